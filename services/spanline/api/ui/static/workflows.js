// Workflows: the organization's list; one workflow's definition as a graph, its versions, and a form
// that starts a run (POST /v1/execute-workflow-async) and opens the run's live page.
import { drawWorkflow } from "./graph.js";
import { formatTime, h } from "./format.js";
import { api } from "./session.js";

export function workflowsPage(main, _params, { signal }) {
  const list = h("ul", { class: "card-list", id: "workflow-list" });
  const status = h("p", { class: "muted", role: "status" }, "Loading workflows…");
  main.replaceChildren(h("h1", {}, "Workflows"), status, list);
  api("/api/v1/workflow/workflows", { signal })
    .then((workflows) => {
      status.textContent = workflows.length ? `${workflows.length} workflows` : "No workflows yet.";
      list.replaceChildren(
        ...workflows.map((workflow) =>
          h(
            "li",
            { dataset: { workflowId: workflow.workflow_id } },
            h("h2", {}, h("a", { href: `/ui/workflows/${workflow.workflow_id}` }, workflow.name)),
            h("p", {}, workflow.description || h("span", { class: "muted" }, "No description.")),
            h("p", { class: "muted small" }, `version ${workflow.version} · updated ${formatTime(workflow.updated_at)}`),
          ),
        ),
      );
    })
    .catch((error) => {
      if (!signal.aborted) status.textContent = `Could not load workflows: ${error.message}`;
    });
}

function inputControl(input) {
  const id = `input-${input.name}`;
  const text = input.type === "STRING" || input.type === undefined;
  const control = text
    ? h("input", { id, name: input.name, required: input.required !== false && input.default == null })
    : input.type === "NUMBER"
      ? h("input", { id, name: input.name, type: "number", step: "any" })
      : h("textarea", { id, name: input.name, spellcheck: "false", placeholder: "JSON" });
  if (input.default !== undefined && input.default !== null) {
    control.value = text ? String(input.default) : JSON.stringify(input.default);
  }
  return h("div", { class: "field" }, h("label", { for: id }, `${input.name} (${input.type ?? "STRING"})`), control);
}

function runForm(workflow, navigate, signal) {
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "run-form", "aria-labelledby": "run-form-title" },
    h("h2", { id: "run-form-title" }, "Start a run"),
    workflow.inputs.map(inputControl),
    h("div", { class: "field" }, h("label", { for: "input-external-id" }, "External id (optional)"), h("input", { id: "input-external-id", name: "__external_id" })),
    h("button", { type: "submit" }, "Start run"),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const data = new FormData(form);
    try {
      const inputs = workflow.inputs.map((input) => {
        const raw = String(data.get(input.name) ?? "");
        const type = input.type ?? "STRING";
        const value = type === "STRING" ? raw : type === "NUMBER" ? Number(raw) : raw ? JSON.parse(raw) : null;
        return { name: input.name, type, value };
      });
      const externalId = String(data.get("__external_id") ?? "").trim();
      const started = await api("/v1/execute-workflow-async", {
        method: "POST",
        body: { workflow_deployment_id: workflow.workflow_id, inputs, external_id: externalId || undefined },
        signal,
      });
      navigate(`/ui/executions/${started.execution_id}`);
    } catch (failure) {
      error.textContent = `Could not start the run: ${failure.message}`;
    }
  });
  return form;
}

export function workflowPage(main, [workflowId], { signal, navigate }) {
  main.replaceChildren(h("p", { class: "muted" }, "Loading workflow…"));
  api(`/api/v1/workflow/workflows/${encodeURIComponent(workflowId)}`, { signal })
    .then((workflow) => {
      main.replaceChildren(
        h("p", { class: "crumbs" }, h("a", { href: "/ui/workflows" }, "← Workflows")),
        h("h1", {}, workflow.name, " ", h("span", { class: "muted small" }, `version ${workflow.version}`)),
        h("p", {}, workflow.description),
        h(
          "div",
          { class: "workflow-layout" },
          h(
            "section",
            { "aria-label": "Definition" },
            h("div", { class: "graph", id: "workflow-graph" }, drawWorkflow(workflow)),
            h(
              "p",
              { class: "muted small" },
              "Solid: a node reads another's output. Dashed: runs after (on the named port of a conditional). ",
              `Versions: ${workflow.versions.map((v) => `${v.version} (${formatTime(v.created_at)})`).join(", ")}.`,
            ),
            h(
              "p",
              {},
              h("a", { href: `/ui/executions?workflow_id=${encodeURIComponent(workflow.name)}` }, "Runs of this workflow →"),
            ),
          ),
          runForm(workflow, navigate, signal),
        ),
      );
    })
    .catch((error) => {
      if (signal.aborted) return;
      main.replaceChildren(
        h("h1", {}, error.status === 404 ? "Workflow not found" : "Could not load the workflow"),
        h("p", { role: "alert" }, error.message),
      );
    });
}

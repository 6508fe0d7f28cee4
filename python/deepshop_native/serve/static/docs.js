// /docs: the server's OpenAPI description as a page (no outside scripts): each route with its
// description, parameters, form fields and responses.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function schemaText(schema) {
  if (!schema) return "";
  const parts = [schema.type === "string" && schema.format === "binary" ? "file" : (schema.type || "")];
  if (schema.enum) parts.push(`one of ${schema.enum.join(", ")}`);
  if (schema.minimum !== undefined) parts.push(`≥ ${schema.minimum}`);
  if (schema.maximum !== undefined) parts.push(`≤ ${schema.maximum}`);
  if (schema.default !== undefined) parts.push(`default ${schema.default}`);
  return parts.filter(Boolean).join(", ");
}

function table(rows, head) {
  const t = el("table", {}, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))));
  const body = el("tbody");
  for (const row of rows) body.append(el("tr", {}, ...row.map((c) => el("td", {}, c))));
  t.append(body);
  return t;
}

function operation(path, method, op) {
  const card = el("section", { class: "card" });
  card.append(el("h2", {}, el("span", { class: `method ${method}` }, method.toUpperCase()), " ", el("code", {}, path)));
  if (op.description || op.summary) card.append(el("p", {}, op.description || op.summary));
  const params = (op.parameters || []).map((p) => [el("code", {}, p.name), p.in, schemaText(p.schema)]);
  if (params.length) card.append(el("h3", {}, "Parameters"), table(params, ["name", "in", "type"]));
  const body = op.requestBody && op.requestBody.content && op.requestBody.content["multipart/form-data"];
  if (body && body.schema && body.schema.properties) {
    const required = new Set(body.schema.required || []);
    const rows = Object.entries(body.schema.properties).map(([name, s]) => [
      el("code", {}, name + (required.has(name) ? " *" : "")), schemaText(s), s.description || ""]);
    card.append(el("h3", {}, "Form fields (multipart/form-data)"), table(rows, ["field", "type", "meaning"]));
  }
  const responses = Object.entries(op.responses || {}).map(([code, r]) => [
    el("code", {}, code), r.description || "", Object.keys(r.content || {}).join(", ")]);
  if (responses.length) card.append(el("h3", {}, "Responses"), table(responses, ["status", "meaning", "content"]));
  return card;
}

document.addEventListener("DOMContentLoaded", async () => {
  const main = document.getElementById("api");
  try {
    const spec = await (await fetch("/openapi.json")).json();
    main.textContent = "";
    main.append(el("p", { class: "muted" }, `${spec.info.title} ${spec.info.version}. ${spec.info.description || ""}`));
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(methods)) main.append(operation(path, method, op));
    }
  } catch (e) {
    main.textContent = `Could not read /openapi.json: ${e.message}`;
  }
});

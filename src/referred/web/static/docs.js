// Renders /openapi.json as a plain list of endpoints (a local stand-in for Swagger UI).
"use strict";

function el(tag, cls, text) {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  if (text !== undefined) n.textContent = text;
  return n;
}

function rows(table, fields) {
  for (const f of fields) {
    const tr = el("tr");
    const name = el("td");
    name.append(el("code", "", f.name));
    if (f.required) name.append(el("span", "req", "required"));
    tr.append(name, el("td", "", f.where), el("td", "", f.type || ""), el("td", "", f.doc || ""));
    table.append(tr);
  }
}

function fieldsOf(op) {
  const out = (op.parameters || []).map((p) => ({
    name: p.name, where: p.in, required: p.required,
    type: (p.schema && p.schema.type) || "", doc: p.description || "",
  }));
  const form = op.requestBody && op.requestBody.content
    && op.requestBody.content["multipart/form-data"];
  if (form && form.schema && form.schema.properties) {
    const req = new Set(form.schema.required || []);
    for (const [name, s] of Object.entries(form.schema.properties)) {
      out.push({ name, where: "form", required: req.has(name),
        type: s.format === "binary" ? "file" : s.type, doc: s.description || "" });
    }
  }
  return out;
}

async function main() {
  const spec = await (await fetch("/openapi.json")).json();
  const box = document.getElementById("endpoints");
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const card = el("section", "panel endpoint");
      const h = el("h3");
      h.append(el("span", "method " + method, method.toUpperCase()), el("code", "", path));
      card.append(h);
      if (op.summary) card.append(el("p", "", op.summary));
      const fields = fieldsOf(op);
      if (fields.length) {
        const table = el("table");
        const head = el("tr");
        for (const t of ["field", "in", "type", ""]) head.append(el("th", "", t));
        table.append(head);
        rows(table, fields);
        card.append(table);
      }
      const codes = Object.keys(op.responses || {}).join(", ");
      card.append(el("p", "", "responses: " + codes));
      box.append(card);
    }
  }
}

document.addEventListener("DOMContentLoaded", main);

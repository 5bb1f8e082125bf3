// A small offline API reference built from /openapi.json (FastAPI's Swagger UI loads from a CDN).
"use strict";

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function resolve(spec, schema) {
  // follow one "$ref": "#/components/schemas/Name"
  if (schema && schema.$ref) return spec.components.schemas[schema.$ref.split("/").pop()];
  return schema || {};
}

function typeOf(schema) {
  if (!schema) return "";
  if (schema.anyOf) return schema.anyOf.map(typeOf).join(" | ");
  return schema.format === "binary" ? "file" : schema.type || "";
}

function parameterRows(spec, op) {
  const rows = (op.parameters || []).map((p) => [p.name, p.in, typeOf(p.schema), p.required ? "required" : `default ${JSON.stringify(p.schema && p.schema.default)}`, p.description || ""]);
  const form = op.requestBody && op.requestBody.content && op.requestBody.content["multipart/form-data"];
  if (form) {
    const body = resolve(spec, form.schema);
    for (const [name, prop] of Object.entries(body.properties || {})) {
      const required = (body.required || []).includes(name);
      rows.push([name, "form", typeOf(prop), required ? "required" : `default ${JSON.stringify(prop.default)}`, prop.description || ""]);
    }
  }
  return rows;
}

async function main() {
  const spec = await (await fetch("/openapi.json")).json();
  document.title = `${spec.info.title}: API`;
  const root = document.getElementById("endpoints");
  root.append(el("p", "muted", spec.info.description || ""));
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const section = el("section", "endpoint");
      const title = el("h2");
      title.append(el("span", "verb", method.toUpperCase()), el("code", "", ` ${path}`));
      section.append(title, el("p", "", op.summary || ""));
      const rows = parameterRows(spec, op);
      if (rows.length) {
        const table = el("table");
        const head = el("tr");
        ["name", "in", "type", "", "description"].forEach((h) => head.append(el("th", "", h)));
        table.append(head);
        rows.forEach((r) => {
          const tr = el("tr");
          r.forEach((cell) => tr.append(el("td", "", cell)));
          table.append(tr);
        });
        section.append(table);
      }
      const codes = Object.entries(op.responses || {}).map(([code, r]) => `${code} ${r.description}`);
      section.append(el("p", "muted", `responses: ${codes.join(" · ")}`));
      root.append(section);
    }
  }
}

main();

// The search page: upload or drop an image, or click an indexed one, to see its nearest neighbours.
"use strict";

const PAGE_SIZE = 48;
const $ = (id) => document.getElementById(id);
let browseOffset = 0;
let maxUploadBytes = Infinity;

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    // FastAPI puts the reason in `detail`: a string, or a list of validation errors
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || response.statusText);
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

function card(entry, score) {
  const div = document.createElement("div");
  div.className = "card";
  div.dataset.id = entry.id;
  div.title = `${entry.name} (id ${entry.id})`;
  const img = document.createElement("img");
  img.loading = "lazy";
  img.alt = entry.label || entry.name;
  img.src = `${entry.url}?size=256`;
  img.onload = () => img.classList.toggle("tiny", img.naturalWidth < 96);
  const meta = document.createElement("div");
  meta.className = "meta";
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = entry.label || entry.name;
  meta.append(label);
  if (score !== undefined) {
    const s = document.createElement("span");
    s.className = "score";
    s.textContent = score.toFixed(3);
    meta.append(s);
  }
  div.append(img, meta);
  div.addEventListener("click", () => searchById(entry.id, entry));
  return div;
}

function showCards(title, entries, withScores) {
  $("results-title").textContent = title;
  $("results").replaceChildren(...entries.map((e) => card(e, withScores ? e.score : undefined)));
}

function showClasses(classes) {
  $("classes-panel").hidden = !classes;
  if (!classes) return;
  $("classes").replaceChildren(
    ...classes.map((c) => {
      const li = document.createElement("li");
      li.textContent = `${c.label} — ${(100 * c.probability).toFixed(1)}%`;
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.width = `${Math.max(1, 100 * c.probability)}%`;
      li.append(bar);
      return li;
    })
  );
}

function k() {
  return Number($("k-select").value);
}

async function searchFile(file) {
  if (!file) return;
  if (file.size > maxUploadBytes) {
    setStatus(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MiB, over the ${(maxUploadBytes / 2 ** 20).toFixed(1)} MiB limit`, true);
    return;
  }
  const preview = $("query-preview");
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  $("drop-text").textContent = file.name;
  $("pager").hidden = true;
  setStatus("searching…");
  const form = new FormData();
  form.append("image", file);
  form.append("k", String(k()));
  const started = performance.now();
  try {
    const body = await getJSON("/api/search", { method: "POST", body: form });
    showCards(`${body.hits.length} images most similar to ${file.name}`, body.hits, true);
    showClasses(body.classes);
    setStatus(`done in ${((performance.now() - started) / 1000).toFixed(2)} s`);
  } catch (err) {
    setStatus(err.message, true);
  }
}

async function searchById(id, entry) {
  const preview = $("query-preview");
  preview.src = `/api/image/${id}?size=256`;
  preview.hidden = false;
  $("drop-text").textContent = entry ? `${entry.label || ""} ${entry.name}` : `image ${id}`;
  $("pager").hidden = true;
  showClasses(null);
  setStatus("searching…");
  try {
    const body = await getJSON(`/api/items/${id}/similar?k=${k()}`);
    showCards(`${body.hits.length} images most similar to ${body.query.name}`, body.hits, true);
    setStatus("");
  } catch (err) {
    setStatus(err.message, true);
  }
}

async function browse(offset) {
  try {
    const body = await getJSON(`/api/items?offset=${offset}&limit=${PAGE_SIZE}`);
    browseOffset = offset;
    const last = Math.min(offset + PAGE_SIZE, body.total);
    showCards(`Indexed images ${body.total ? offset + 1 : 0}–${last} of ${body.total}: click one to search with it`, body.items, false);
    $("pager").hidden = body.total <= PAGE_SIZE;
    $("page-label").textContent = `${offset + 1}–${last}`;
    $("prev-page").disabled = offset === 0;
    $("next-page").disabled = last >= body.total;
  } catch (err) {
    setStatus(err.message, true);
  }
}

async function loadInfo() {
  try {
    const info = await getJSON("/api/info");
    maxUploadBytes = info.max_upload_bytes;
    const model = info.model ? `${info.model}${info.weights ? ` (${info.weights})` : ""}` : "";
    $("info").textContent = `${info.count} images · ${info.method} features${model ? ` · ${model}` : ""}${info.dim ? ` · ${info.dim}-d` : ""}`;
  } catch (err) {
    $("info").textContent = `cannot read the index: ${err.message}`;
  }
}

function wireDropZone() {
  const zone = $("drop-zone");
  $("file-input").addEventListener("change", (e) => searchFile(e.target.files[0]));
  ["dragenter", "dragover"].forEach((type) =>
    zone.addEventListener(type, (e) => {
      e.preventDefault();
      zone.classList.add("dragging");
    })
  );
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("dragging")));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    searchFile(e.dataTransfer.files[0]);
  });
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") $("file-input").click();
  });
}

wireDropZone();
$("browse-button").addEventListener("click", () => browse(0));
$("prev-page").addEventListener("click", () => browse(Math.max(0, browseOffset - PAGE_SIZE)));
$("next-page").addEventListener("click", () => browse(browseOffset + PAGE_SIZE));
loadInfo();
browse(0);

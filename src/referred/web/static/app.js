// referred — the search page. Plain JS; talks to the service over HTTP only.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = {
  blob: null,          // the query photo, as sent to the API
  image: null,         // the decoded <img> of it, for drawing
  sample: null,        // the chosen sample scene (name, categories) or null
  category: null,      // chosen category, or null
  text: "",            // free-text condition (text models only)
  mode: "search",      // "search" | "look"
  categories: [],
  acceptsText: false,
  seq: 0,              // answers to older requests are dropped
  box: null,           // [x0, y0, x1, y1]: the boxed region, fractions of the photo, or null
  dragged: false,      // a box was just drawn: the click that ends it is not a file pick
  up: new Set(),       // product ids marked "more like this" (feedback), for this query
  down: new Set(),     // product ids marked "not this"
  exclude: [],         // words a result's title/caption must not name ("not the black one")
  modify: "",          // "this, but in red": composed by the model's Combiner, if it has one
  composes: false,     // the model has a Combiner: "this, but…" on the item and on each card
  like: null,          // {id, title, modify}: "this, but…" typed on a result card, else null
  more: [],            // more photos of the same item (their queries are averaged with it)
};

// At most this many photos in one search (the service's limit, MAX_QUERY_IMAGES).
const MAX_PHOTOS = 8;

// More photos of the item: searched together with the photo (POST /search more_images).
function setMore(files) {
  state.more = files.slice(0, MAX_PHOTOS - 1);
  const n = state.more.length;
  $("#more-note").hidden = n === 0;
  $("#more-note").textContent = n ? `searching with ${n} more photo${n > 1 ? "s" : ""}`
    + (files.length > n ? ` (at most ${MAX_PHOTOS} in all)` : "") : "";
  $("#clear-more").hidden = n === 0;
  resetFeedback();
}

function resetFeedback() {
  state.up.clear();
  state.down.clear();
}

// A thumb on a result card: mark it (again: unmark it) and refine the results in place.
function vote(id, good) {
  const mine = good ? state.up : state.down, other = good ? state.down : state.up;
  if (mine.has(id)) mine.delete(id); else { mine.add(id); other.delete(id); }
  run();
}

// -- helpers ---------------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v);
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error("the service cannot be reached (" + err.message + ")");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
    throw new Error(message);
  }
  return body;
}

function setStatus(message, kind = "") {
  const s = $("#status");
  s.textContent = message || "";
  s.className = "status" + (kind ? " " + kind : "");
}

function busy(on) {
  $("#busy").hidden = !on;
}

// -- the photo and the attention overlay ------------------------------------------------------
// The model pads a photo to a white square before resizing, so the attention grid covers that
// square: draw the photo centred in a square canvas and the grid over the whole canvas.
function drawPhoto() {
  const canvas = $("#photo");
  const ctx = canvas.getContext("2d");
  const size = canvas.width;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, size, size);
  const img = state.image;
  if (!img) return;
  const scale = size / Math.max(img.naturalWidth, img.naturalHeight);
  const w = img.naturalWidth * scale, h = img.naturalHeight * scale;
  ctx.imageSmoothingEnabled = scale < 3;  // tiny images look better as crisp pixels
  ctx.drawImage(img, (size - w) / 2, (size - h) / 2, w, h);
}

const RAMP = [[255, 209, 102], [243, 114, 44], [201, 24, 74], [90, 24, 154]];
function rampColor(t) {
  const x = Math.min(Math.max(t, 0), 1) * (RAMP.length - 1);
  const i = Math.min(Math.floor(x), RAMP.length - 2), f = x - i;
  return RAMP[i].map((a, j) => Math.round(a + (RAMP[i + 1][j] - a) * f));
}

function drawHeat(att) {
  const canvas = $("#heat");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!att || !att.grid || !att.grid.length) return;
  const g = att.size;
  const values = att.grid.flat();
  // Attention relative to a uniform gaze (1 = every patch equal). Only above-average patches
  // are coloured, and a nearly flat map (an untrained model) stays faint: the overlay never
  // shows more focus than the model has.
  const ratio = values.map((v) => v * g * g);
  const peak = Math.max(...ratio);
  const strength = Math.min(1, Math.max(0, (peak - 1) / 1.5));
  const small = document.createElement("canvas");
  small.width = g; small.height = g;
  const sctx = small.getContext("2d");
  const data = sctx.createImageData(g, g);
  ratio.forEach((r, i) => {
    const t = peak > 1 ? Math.max(0, (r - 1) / (peak - 1)) : 0;
    const [red, green, blue] = rampColor(t);
    data.data.set([red, green, blue, Math.round(255 * 0.85 * strength * Math.pow(t, 1.2))], i * 4);
  });
  sctx.putImageData(data, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  const b = boxOnCanvas(state.box);
  if (!b) {
    ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
    return;
  }
  // with a box the model saw the crop padded to a square: the grid covers that square, and
  // only the part over the box itself is drawn
  const side = Math.max(b.w, b.h);
  ctx.save();
  ctx.beginPath();
  ctx.rect(b.x, b.y, b.w, b.h);
  ctx.clip();
  ctx.drawImage(small, b.x + b.w / 2 - side / 2, b.y + b.h / 2 - side / 2, side, side);
  ctx.restore();
}

// -- a box on the photo ---------------------------------------------------------------------------
// Where the photo lies on the (square) canvas, in canvas pixels.
function photoRect() {
  const img = state.image, size = $("#photo").width;
  if (!img) return null;
  const scale = size / Math.max(img.naturalWidth, img.naturalHeight);
  const w = img.naturalWidth * scale, h = img.naturalHeight * scale;
  return { x: (size - w) / 2, y: (size - h) / 2, w, h };
}

function boxOnCanvas(box) {
  const r = photoRect();
  if (!box || !r) return null;
  return { x: r.x + box[0] * r.w, y: r.y + box[1] * r.h,
           w: (box[2] - box[0]) * r.w, h: (box[3] - box[1]) * r.h };
}

function pointerFraction(e) {
  const c = $("#region"), rect = c.getBoundingClientRect(), r = photoRect();
  const x = (e.clientX - rect.left) * c.width / rect.width;
  const y = (e.clientY - rect.top) * c.height / rect.height;
  const clamp = (v) => Math.min(Math.max(v, 0), 1);
  return [clamp((x - r.x) / r.w), clamp((y - r.y) / r.h)];
}

function drawBox(box) {
  const canvas = $("#region"), ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const b = boxOnCanvas(box);
  if (!b) return;
  ctx.fillStyle = "rgba(20, 20, 30, 0.35)";  // dim what lies outside the box
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.clearRect(b.x, b.y, b.w, b.h);
  ctx.setLineDash([6, 4]);
  ctx.lineWidth = 2;
  ctx.strokeStyle = "#fff";
  ctx.strokeRect(b.x, b.y, b.w, b.h);
}

function setBox(box) {
  state.box = box;
  state.like = null;
  $("#clear-box").hidden = !box;
  $("#box-hint").hidden = !!box;
  drawBox(box);
  drawHeat(null);
}

function wireBox() {
  const canvas = $("#region");
  let start = null;
  const spanOf = (a, b) => [Math.min(a[0], b[0]), Math.min(a[1], b[1]),
                            Math.max(a[0], b[0]), Math.max(a[1], b[1])];
  canvas.addEventListener("pointerdown", (e) => {
    if (!state.image || e.button !== 0) return;
    start = pointerFraction(e);
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (start) drawBox(spanOf(start, pointerFraction(e)));
  });
  canvas.addEventListener("pointerup", (e) => {
    if (!start) return;
    const box = spanOf(start, pointerFraction(e));
    start = null;
    const r = photoRect();
    if ((box[2] - box[0]) * r.w < 8 || (box[3] - box[1]) * r.h < 8) {
      drawBox(state.box);  // a click, not a drag: it picks a file as before
      return;
    }
    state.dragged = true;
    setBox(box);
    run();
  });
  $("#clear-box").addEventListener("click", () => { setBox(null); run(); });
}

async function setPhoto(blob, sample = null) {
  const url = URL.createObjectURL(blob);
  const img = new Image();
  img.decoding = "async";
  const loaded = new Promise((resolve) => {
    img.onload = () => resolve(true);
    img.onerror = () => resolve(false);
  });
  img.src = url;
  state.blob = blob;
  state.sample = sample;
  state.image = (await loaded) ? img : null;
  setBox(null);
  setMore([]);
  resetFeedback();
  $("#drop").classList.add("has-photo");
  drawPhoto();
  drawHeat(null);
  markWorn(sample ? sample.categories : null);
  if (!sample) findWorn(blob);
  for (const b of document.querySelectorAll(".sample")) {
    b.classList.toggle("active", !!sample && b.dataset.name === sample.name);
  }
  if (!state.image) {
    setStatus("The browser cannot preview this file; the service will still try to read it.");
  }
  run();
}

function wireDrop() {
  const drop = $("#drop"), file = $("#file");
  drop.addEventListener("click", (e) => {
    if (state.dragged) { state.dragged = false; return; }  // the end of drawing a box
    if (e.target !== file) file.click();
  });
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); file.click(); }
  });
  file.addEventListener("change", () => {
    if (file.files && file.files[0]) setPhoto(file.files[0]);
    file.value = "";
  });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => {
    const f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
    if (f) setPhoto(f);
  });
  document.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData ? e.clipboardData.items : [])]
      .find((i) => i.type.startsWith("image/"));
    if (item) setPhoto(item.getAsFile());
  });
  const more = $("#more-file");
  more.addEventListener("change", () => {
    if (!state.blob) setStatus("Add the photo first, then more photos of the same item.");
    else if (more.files && more.files.length) { setMore([...more.files]); run(); }
    more.value = "";
  });
  $("#clear-more").addEventListener("click", () => { setMore([]); run(); });
  $("#show-heat").addEventListener("change", (e) => {
    $("#heat").classList.toggle("off", !e.target.checked);
  });
}

// -- conditions --------------------------------------------------------------------------------
function renderChips() {
  const chips = $("#chips");
  chips.replaceChildren();
  for (const name of state.categories) {
    chips.append(el("button", {
      class: "chip", type: "button", "aria-pressed": "false", "data-category": name,
      text: name, onclick: () => chooseCategory(name),
    }));
  }
}

function markWorn(worn, how = "worn in this scene") {
  const set = new Set(worn || []);
  $("#chip-hint").hidden = set.size === 0;
  for (const chip of document.querySelectorAll(".chip")) {
    chip.classList.toggle("worn", set.has(chip.dataset.category));
    chip.title = set.has(chip.dataset.category) ? how : "";
  }
}

// An uploaded photo: ask the model which items it finds (a model without a presence head
// answers 422, and the chips stay unmarked).
async function findWorn(blob) {
  try {
    const body = await api("/presence", { method: "POST", body: queryForm({}) });
    if (state.blob !== blob) return;
    const found = Object.entries(body.presence).filter(([, p]) => p.present).map(([c]) => c);
    markWorn(found, "found in this photo");
  } catch (err) {
    // no presence head, or the photo failed: the search reports the latter
  }
}

function chooseCategory(name) {
  if (name !== state.category || state.like) resetFeedback();
  state.like = null;
  state.category = name;
  state.text = "";
  state.mode = "search";
  $("#text").value = "";
  syncControls();
  run();
}

function syncControls() {
  for (const chip of document.querySelectorAll(".chip")) {
    const on = state.mode === "search" && !state.text && chip.dataset.category === state.category;
    chip.setAttribute("aria-pressed", on ? "true" : "false");
  }
  $("#look").setAttribute("aria-pressed", state.mode === "look" ? "true" : "false");
}

// -- searching ----------------------------------------------------------------------------------
function queryForm(extra) {
  const form = new FormData();
  const name = state.blob && state.blob.name ? state.blob.name : "photo";
  form.append("image", state.blob, name);
  if (state.box) form.append("box", state.box.map((v) => v.toFixed(4)).join(","));
  for (const [k, v] of Object.entries(extra)) {
    if (Array.isArray(v)) v.forEach((x) => form.append(k, x));
    else if (v !== null && v !== undefined) form.append(k, v);
  }
  return form;
}

async function run() {
  if (state.like) return runLike();
  if (!state.blob) {
    setStatus("Add a photo first: drop one, paste one, or pick a sample scene.");
    return;
  }
  if (state.mode === "look") return runLook();
  if (!state.category && !state.text && !state.box) {
    showEmpty("Now say which item you mean", "Pick a category on the left, or drag a box "
      + "around the item — the same photo gives different results for different items.");
    return;
  }
  const seq = ++state.seq;
  // a box alone searches its crop unconditioned (the crop-then-embed way)
  const condition = state.text ? { text: state.text }
    : state.category ? { category: state.category } : {};
  busy(true);
  setStatus("");
  try {
    const feedback = { positive_ids: [...state.up], negative_ids: [...state.down],
      exclude_texts: state.exclude.length ? JSON.stringify(state.exclude) : null,
      modify: state.modify || null, more_images: state.more };
    const body = await api("/search", {
      method: "POST", body: queryForm({ ...condition, ...feedback, k: 12, attention: "true" }),
    });
    if (seq !== state.seq) return;
    drawHeat(body.attention);
    const what = state.text ? `“${state.text}”` : state.category;
    const marks = state.up.size + state.down.size;
    const absent = body.presence && !body.presence.present;
    $("#results-title").textContent = (absent
      ? `No ${what} found in ${state.box ? "the box" : "this photo"} — the closest below`
      : what ? `Results for ${what}` + (state.box ? " in the box" : "")
        : "Results for the boxed item")
      + (marks ? ` · refined by ${marks} mark${marks > 1 ? "s" : ""}` : "")
      + (state.exclude.length ? ` · not ${state.exclude.join(", ")}` : "")
      + (state.modify ? ` · but ${state.modify}` : "")
      + (state.more.length ? ` · ${state.more.length + 1} photos` : "");
    $("#timing").textContent = `${body.results.length} products · ${Math.round(body.took_ms)} ms`
      + (body.presence ? ` · present ${Math.round(100 * body.presence.probability)}%` : "");
    renderResults(body.results, absent);
  } catch (err) {
    if (seq === state.seq) failed(err);
  } finally {
    if (seq === state.seq) busy(false);
  }
}

// "This, but…" typed on a result card: that catalog product, changed so (POST /search with
// like=<its id> and modify), then refined as any results (thumbs, "not these" words).
function startLike(hit, text) {
  resetFeedback();
  state.like = { id: hit.id, title: hit.title || hit.id, modify: text };
  state.mode = "search";
  syncControls();
  run();
}

async function runLike() {
  const seq = ++state.seq;
  const like = state.like;
  busy(true);
  setStatus("");
  try {
    const form = new FormData();
    const fields = { like: like.id, modify: like.modify, k: 12,
      exclude_texts: state.exclude.length ? JSON.stringify(state.exclude) : null };
    for (const [k, v] of Object.entries(fields)) if (v !== null) form.append(k, v);
    for (const id of state.up) form.append("positive_ids", id);
    for (const id of state.down) form.append("negative_ids", id);
    const body = await api("/search", { method: "POST", body: form });
    if (seq !== state.seq) return;
    drawHeat(null);
    const marks = state.up.size + state.down.size;
    $("#results-title").textContent = `“${like.title}”, but ${like.modify.replace(/^but\s+/i, "")}`
      + (marks ? ` · refined by ${marks} mark${marks > 1 ? "s" : ""}` : "")
      + (state.exclude.length ? ` · not ${state.exclude.join(", ")}` : "");
    $("#timing").textContent = `${body.results.length} products · ${Math.round(body.took_ms)} ms`;
    renderResults(body.results);
  } catch (err) {
    if (seq === state.seq) failed(err);
  } finally {
    if (seq === state.seq) busy(false);
  }
}

// A failed query leaves no results on the page: those shown were for another photo or item.
function failed(err) {
  clearResults();
  drawHeat(null);
  setStatus(err.message, "error");
}

async function runLook() {
  const seq = ++state.seq;
  const worn = state.sample && state.sample.categories && state.sample.categories.length
    ? state.sample.categories : null;
  busy(true);
  setStatus("");
  try {
    const body = await api("/shop-the-look", {
      // a sample scene knows what it wears; an uploaded photo shops what the model finds
      method: "POST", body: queryForm({ k: 6, categories: worn ? worn.join(",") : null,
        include_absent: worn ? "true" : null }),
    });
    if (seq !== state.seq) return;
    const absent = body.absent || [];
    $("#results-title").textContent = "Shop the look"
      + (absent.length ? ` · not in this photo: ${absent.join(", ")}` : "");
    const n = Object.keys(body.results).length;
    $("#timing").textContent = `${n} categories · ${Math.round(body.took_ms)} ms`;
    if (!n) {
      showEmpty("No item found in this photo", "The model finds none of the categories here.");
      return;
    }
    renderLooks(body.results);
    const first = state.category && body.results[state.category] ? state.category
      : Object.keys(body.results)[0];
    if (first) showAttention(first, seq);
  } catch (err) {
    if (seq === state.seq) failed(err);
  } finally {
    if (seq === state.seq) busy(false);
  }
}

async function showAttention(category, seq) {
  try {
    const att = await api("/attention", { method: "POST", body: queryForm({ category }) });
    if (seq === state.seq) drawHeat(att);
    for (const row of document.querySelectorAll(".look-row")) {
      row.classList.toggle("focus", row.dataset.category === category);
    }
  } catch (err) {
    /* the overlay is a bonus: results are already shown */
  }
}

// -- rendering ----------------------------------------------------------------------------------
function thumbs(hit) {
  const button = (good) => el("button", {
    type: "button", class: "vote " + (good ? "up" : "down"),
    "aria-pressed": (good ? state.up : state.down).has(hit.id) ? "true" : "false",
    "aria-label": (good ? "more like this: " : "not this: ") + (hit.title || hit.id),
    title: good ? "more like this" : "not this", text: good ? "More like this" : "Not this",
    onclick: (e) => { e.stopPropagation(); vote(hit.id, good); },
  });
  return el("div", { class: "votes" }, button(true), button(false));
}

// "this, but…" on a card (a model with a Combiner): search like this product, changed as typed.
function butBox(hit) {
  const input = el("input", { type: "text", class: "but-input", maxlength: "300",
    autocomplete: "off", placeholder: "this, but…",
    "aria-label": `this, but changed: ${hit.title || hit.id}` });
  return el("form", { class: "but-form", onclick: (e) => e.stopPropagation(),
    onsubmit: (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (text) startLike(hit, text);
    } },
    input, el("button", { type: "submit", class: "ghost", text: "Go",
      title: "search this product, changed as typed" }));
}

function card(hit, rank, feedback = false) {
  const score = Number(hit.score);
  const bar = el("span");
  bar.style.width = `${Math.max(0, Math.min(1, score)) * 100}%`;
  const img = hit.image_url
    ? el("img", { src: hit.image_url, alt: hit.title || hit.id, loading: "lazy" })
    : el("span", { class: "small", text: "no image" });
  // weak: under the model's score floor, where true matches rarely fall (never shown as strong)
  const cls = "card" + (rank === 1 && !hit.weak ? " top" : "") + (hit.weak ? " weak" : "");
  return el("article", { class: cls, title: hit.id },
    el("div", { class: "thumb" }, img),
    el("span", { class: "rank", text: String(rank) }),
    el("div", { class: "body" },
      el("div", { class: "title", text: hit.title || hit.id }),
      el("div", { class: "meta" },
        hit.category ? el("span", { class: "tag", text: hit.category }) : el("span"),
        el("span", { class: "score", text: score.toFixed(3), title: "cosine similarity" })),
      el("div", { class: "bar" }, bar),
      el("div", { class: "pid", text: `id ${hit.id}` }),
      hit.weak ? el("div", { class: "weak-note", text: "weak match",
        title: "scores this low are rarely the item asked for" }) : null,
      feedback ? thumbs(hit) : null,
      state.composes ? butBox(hit) : null));
}

function renderResults(results, weak = false) {
  $("#looks").hidden = true;
  const grid = $("#results");
  grid.hidden = false;
  if (!results.length) {
    showEmpty("Nothing found", "No product matches this query and filter.");
    return;
  }
  grid.className = weak ? "grid weak" : "grid";
  grid.replaceChildren(...results.map((h, i) => card(h, i + 1, true)));
}

function renderLooks(byCategory) {
  $("#results").hidden = true;
  const looks = $("#looks");
  looks.hidden = false;
  looks.replaceChildren();
  for (const [category, hits] of Object.entries(byCategory)) {
    const heading = el("h4", { text: category },
      el("small", { text: hits.length ? "show attention" : "no products" }));
    const row = el("div", { class: "look-row", "data-category": category },
      el("button", { class: "ghost row-head", type: "button",
        onclick: () => showAttention(category, state.seq) }, heading),
      el("div", { class: "strip" }, ...hits.map((h, i) => card(h, i + 1))));
    looks.append(row);
  }
}

function clearResults() {
  $("#looks").hidden = true;
  $("#looks").replaceChildren();
  $("#results").replaceChildren();
  $("#results-title").textContent = "Results";
  $("#timing").textContent = "";
}

function showEmpty(title, text) {
  $("#looks").hidden = true;
  const grid = $("#results");
  grid.hidden = false;
  grid.className = "";
  $("#results-title").textContent = "Results";
  $("#timing").textContent = "";
  grid.replaceChildren(el("div", { class: "empty" },
    el("div", { class: "big", text: title }), el("div", { text: text })));
}

// -- start ------------------------------------------------------------------------------------------
async function loadSamples() {
  let samples = [];
  try {
    samples = (await api("/samples")).samples;
  } catch (err) {
    return [];
  }
  const box = $("#samples");
  box.replaceChildren(...samples.map((s) => el("button", {
    class: "sample", type: "button", "data-name": s.name,
    title: s.caption || s.name, "aria-label": `sample scene: ${s.caption || s.name}`,
    onclick: () => pickSample(s),
  }, el("img", { src: s.image_url, alt: "" }))));
  $("#samples-wrap").hidden = samples.length === 0;
  return samples;
}

async function pickSample(sample) {
  const response = await fetch(sample.image_url);
  if (!response.ok) { setStatus(`cannot load sample ${sample.name}`, "error"); return; }
  const blob = await response.blob();
  const file = new File([blob], sample.name, { type: blob.type });
  if (state.mode === "search" && !state.text && sample.categories && sample.categories.length
      && !sample.categories.includes(state.category)) {
    state.category = sample.categories[0];  // pick an item that is actually in the scene
    syncControls();
  }
  await setPhoto(file, sample);
}

async function main() {
  wireDrop();
  wireBox();
  $("#modify-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.modify = $("#modify").value.trim();
    if (state.like) resetFeedback();
    state.like = null;
    run();
  });
  $("#exclude-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.exclude = $("#exclude").value.split(",").map((w) => w.trim()).filter(Boolean);
    run();
  });
  $("#text-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("#text").value.trim();
    if (!text) return;
    if (text !== state.text || state.like) resetFeedback();
    state.like = null;
    state.text = text;
    state.mode = "search";
    syncControls();
    run();
  });
  $("#look").addEventListener("click", () => {
    state.like = null;
    state.mode = state.mode === "look" ? "search" : "look";
    syncControls();
    run();
  });
  api("/healthz").then((h) => {
    const pill = $("#health");
    pill.textContent = h.products != null ? `${h.products.toLocaleString()} products` : h.status;
    pill.classList.add(h.status === "ok" ? "ok" : "bad");
    $("#footer-info").textContent = h.model ? `model: ${h.model}` : "";
    if (h.trained_model === false) {
      const note = $("#model-note");
      note.textContent = "Heads-up: this demo runs an untrained model, so results are near "
        + "chance. The page works the same with a trained one.";
      note.hidden = false;
    }
  }).catch(() => { $("#health").textContent = "offline"; $("#health").classList.add("bad"); });
  try {
    const cats = await api("/categories");
    state.categories = cats.categories;
    state.acceptsText = cats.accepts_text;
    $("#text").maxLength = cats.max_text_chars;
    $("#text-form").hidden = !cats.accepts_text;
    $("#modify-form").hidden = !cats.composes;
    state.composes = !!cats.composes;
    renderChips();
  } catch (err) {
    setStatus(err.message, "error");
    return;
  }
  showEmpty("Start with a photo", "Drop a photo of a look, or pick a sample scene.");
  const samples = await loadSamples();
  if (samples.length) await pickSample(samples[0]);  // show the idea at once
}

document.addEventListener("DOMContentLoaded", main);

// The image view: upload, run a task, draw masks, click/box prompts, download JSON.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { imageId: null, file: null, result: null, resultText: null, points: [], box: null, drag: null, chat: [] };

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function headers() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// fetch + JSON; API errors ({error: {code, message}}) become thrown Errors with the message.
async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  } catch (err) {
    throw new Error(`the server did not answer (${err.message})`);
  }
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch (err) { body = null; }
  if (!response.ok) {
    const detail = body && body.error ? `${body.error.message} (${body.error.code})` : text.slice(0, 200);
    const error = new Error(`${response.status}: ${detail}`);
    error.status = response.status;
    throw error;
  }
  return { body, text };
}

function setStatus(text) { $("status").textContent = text; }

async function loadFile(file) {
  showError("");
  state.file = file; state.result = null; state.points = []; state.box = null; state.chat = [];
  $("chat-log").innerHTML = "";
  const bitmap = await createImageBitmap(file).catch(() => null);
  if (bitmap) {
    const canvas = $("image-canvas");
    canvas.width = bitmap.width; canvas.height = bitmap.height;
    canvas.getContext("2d").drawImage(bitmap, 0, 0);
  }
  clearCanvas($("mask-canvas")); drawPrompts();
  $("legend").innerHTML = ""; $("result-text").textContent = "";
  setStatus("uploading…");
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const { body } = await api("/v1/images", { method: "POST", body: form });
    state.imageId = body.image_id;
    sizeCanvases(body.width, body.height);
    $("run").disabled = false;
    setStatus(body.interactive ? `ready (embedding ${body.embedding_ms.toFixed(0)} ms): type or click`
      : "ready: this preset has no segmenter for clicks");
    document.body.dataset.imageId = body.image_id;
  } catch (err) { showError(err.message); setStatus(""); }
}

function sizeCanvases(width, height) {
  for (const id of ["image-canvas", "mask-canvas", "prompt-canvas"]) {
    const canvas = $(id);
    if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
  }
}

function clearCanvas(canvas) { canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height); }

function taskForm(task) {
  const form = new FormData();
  form.append("image_id", state.imageId);
  const text = $("text").value;
  if (task === "segment") form.append("text", text);
  if (task === "ground") form.append("caption", text);
  if (task === "chat") { form.append("question", text); form.append("history", JSON.stringify(state.chat)); }
  if (task === "semseg") form.append("classes", text);
  if (task === "caption") form.append("grounded", "true");
  return form;
}

async function runTask() {
  if (!state.imageId) return;
  const task = $("task").value;
  showError(""); setStatus(`${task}…`);
  const started = performance.now();
  try {
    const { body, text } = await api(`/v1/${task}`, { method: "POST", body: taskForm(task) });
    if (task === "chat") addChatTurn($("text").value, body.text);
    showResult(body, text);
    setStatus(`${task}: ${body.regions.length} region(s) in ${(performance.now() - started).toFixed(0)} ms`);
  } catch (err) {
    if (err.status === 404) state.imageId = null;
    showError(err.message); setStatus("");
  }
}

// Earlier turns above the latest answer (which shows with its grounded phrases below).
function addChatTurn(question, answer) {
  const log = $("chat-log");
  if (state.chat.length) {
    const [q, a] = state.chat[state.chat.length - 1];
    const item = document.createElement("p");
    item.className = "turn";
    item.textContent = `Q: ${q} — A: ${a}`;
    log.append(item);
  }
  state.chat.push([question, answer]);
  const current = document.createElement("p");
  current.className = "turn question";
  current.textContent = `Q: ${question}`;
  log.querySelectorAll(".question").forEach((el) => el.remove());
  log.append(current);
}

function showResult(result, text) {
  state.result = result; state.resultText = text;
  const colours = drawRegions($("mask-canvas"), result, null);
  renderText($("result-text"), result, colours, $("legend"), $("mask-canvas"));
  $("download-json").disabled = false;
  document.body.dataset.regions = String(result.regions.length);
  document.body.dataset.results = String(Number(document.body.dataset.results || 0) + 1);
}

// The result's text with its phrases highlighted; hovering a phrase or a legend entry
// highlights its mask, hovering a mask highlights its phrase.
function renderText(target, result, colours, legend, maskCanvas) {
  target.innerHTML = ""; legend.innerHTML = "";
  const spans = result.regions.map((r, i) => ({ span: r.span, i })).filter((s) => s.span)
    .sort((a, b) => a.span[0] - b.span[0]);
  let pos = 0;
  const text = result.text || "";
  for (const { span, i } of spans) {
    if (span[0] < pos) continue;
    target.append(document.createTextNode(text.slice(pos, span[0])));
    const el = document.createElement("span");
    el.className = "phrase"; el.dataset.region = i;
    el.textContent = text.slice(span[0], span[1]);
    el.style.background = `rgba(${colours[i].join(",")},0.35)`;
    target.append(el);
    pos = span[1];
  }
  target.append(document.createTextNode(text.slice(pos)));
  result.regions.forEach((region, i) => {
    const li = document.createElement("li");
    li.dataset.region = i;
    const sw = document.createElement("span");
    sw.className = "swatch"; sw.style.background = `rgb(${colours[i].join(",")})`;
    li.append(sw, document.createTextNode(`${region.phrase || region.label || "region " + i} (${region.score.toFixed(2)})`));
    legend.append(li);
  });
  const hover = (i) => {
    drawRegions(maskCanvas, result, i);
    for (const el of [...target.querySelectorAll(".phrase"), ...legend.children]) {
      el.classList.toggle("hot", i !== null && Number(el.dataset.region) === i);
    }
  };
  for (const el of [...target.querySelectorAll(".phrase"), ...legend.children]) {
    el.addEventListener("mouseenter", () => hover(Number(el.dataset.region)));
    el.addEventListener("mouseleave", () => hover(null));
  }
  maskCanvas.onhover = hover;
}

function regionAt(result, x, y) {
  const { width, height } = result.image;
  for (let i = result.regions.length - 1; i >= 0; i--) {
    const region = result.regions[i];
    if (!region.mask) continue;
    const col = Math.floor(x), row = Math.floor(y);
    if (col < 0 || row < 0 || col >= width || row >= height) return null;
    if (rleDecode(region.mask)[row * width + col]) return i;
  }
  return null;
}

function imagePoint(canvas, event) {
  const rect = canvas.getBoundingClientRect();
  return [(event.clientX - rect.left) * canvas.width / rect.width,
    (event.clientY - rect.top) * canvas.height / rect.height];
}

function drawPrompts() {
  const canvas = $("prompt-canvas");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const radius = Math.max(3, canvas.width / 120);
  for (const p of state.points) {
    ctx.beginPath(); ctx.arc(p.x, p.y, radius, 0, 2 * Math.PI);
    ctx.fillStyle = p.positive ? "#0c0" : "#d00"; ctx.fill();
    ctx.strokeStyle = "#fff"; ctx.stroke();
  }
  const box = state.drag ? state.drag.box : state.box;
  if (box) { ctx.strokeStyle = "#ff0"; ctx.lineWidth = 2; ctx.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]); }
}

async function sendPrompt() {
  if (!state.imageId || (!state.points.length && !state.box)) return;
  showError(""); setStatus("decoding…");
  const started = performance.now();
  const request = { points: state.points, box: state.box };
  try {
    const { body, text } = await api(`/v1/images/${state.imageId}/prompt`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request),
    });
    showResult(body, text);
    setStatus(`mask in ${(performance.now() - started).toFixed(0)} ms`);
  } catch (err) { showError(err.message); setStatus(""); }
}

function setupPrompts() {
  const canvas = $("prompt-canvas");
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener("mousedown", (e) => {
    const [x, y] = imagePoint(canvas, e);
    state.drag = { x, y, box: null, negative: e.shiftKey || e.button === 2 };
  });
  canvas.addEventListener("mousemove", (e) => {
    const [x, y] = imagePoint(canvas, e);
    if (state.drag) {
      const d = state.drag;
      if (Math.abs(x - d.x) > 4 || Math.abs(y - d.y) > 4) {
        d.box = [Math.min(d.x, x), Math.min(d.y, y), Math.max(d.x, x), Math.max(d.y, y)];
        drawPrompts();
      }
    } else if (state.result && $("mask-canvas").onhover) {
      $("mask-canvas").onhover(regionAt(state.result, x, y));
    }
  });
  canvas.addEventListener("mouseup", () => {
    const d = state.drag; state.drag = null;
    if (!d) return;
    if (d.box) state.box = d.box.map((v) => Math.round(v));
    else state.points.push({ x: Math.round(d.x * 10) / 10, y: Math.round(d.y * 10) / 10, positive: !d.negative });
    drawPrompts(); sendPrompt();
  });
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  const a = document.createElement("a");
  a.href = url; a.download = name; document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function setupTabs() {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".tab")) other.classList.toggle("active", other === tab);
      for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== tab.dataset.view;
    });
  }
}

function setupImageView() {
  $("image-file").addEventListener("change", (e) => e.target.files[0] && loadFile(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files[0]) loadFile(e.dataTransfer.files[0]);
  });
  $("run").addEventListener("click", runTask);
  $("text").addEventListener("keydown", (e) => { if (e.key === "Enter") runTask(); });
  $("clear-prompts").addEventListener("click", () => { state.points = []; state.box = null; drawPrompts(); });
  $("download-json").addEventListener("click", () => {
    if (state.resultText) download(`${state.result.task}.json`, state.resultText);
  });
  $("api-key").value = sessionStorage.getItem("pixelground-key") || "";
  $("api-key").addEventListener("change", () => sessionStorage.setItem("pixelground-key", $("api-key").value));
  setupPrompts();
}

async function showServer() {
  try {
    const { body } = await api("/healthz");
    $("server-info").textContent = `preset ${body.preset}${body.meaningful ? "" : " (random weights)"}`;
  } catch (err) { showError(err.message); }
}

setupTabs();
setupImageView();
showServer();

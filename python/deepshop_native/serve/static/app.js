// deepshop serve's page: pick a photo and a style (or a painting), send a job, follow its
// server-sent events on the progress bar, show the result with a before/after slider.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { photo: null, photoUrl: null, style: null, painting: null, paintingModel: null,
                job: null, events: null, resultUrl: null };

function setError(text) { $("error").textContent = text || ""; }
function setStatus(text) { $("status").textContent = text || ""; }

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch (e) { /* not JSON */ }
  return `${response.status} ${response.statusText}`;
}

function updateGo() {
  const ready = state.photo && (state.style || state.painting) && !state.job;
  $("go").disabled = !ready;
}

// --- the photo ---------------------------------------------------------------------------------
function usePhoto(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) { setError(`${file.name}: not an image`); return; }
  setError("");
  state.photo = file;
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photoUrl = URL.createObjectURL(file);
  const img = $("photo-preview");
  img.src = state.photoUrl;
  img.alt = `Your photo: ${file.name}`;
  img.hidden = false;
  $("photo-text").textContent = `${file.name} — drop or choose another`;
  updateGo();
}

// --- the styles --------------------------------------------------------------------------------
function selectStyle(name) {
  state.style = name;
  if (name) clearPainting();
  for (const item of document.querySelectorAll(".style-item")) {
    item.setAttribute("aria-pressed", String(item.dataset.name === name));
  }
  updateGo();
}

function clearPainting() {
  state.painting = null;
  $("painting-input").value = "";
  $("painting-preview").hidden = true;
  if (state.paintingModel) $("painting-text").textContent = "Or drop a painting to use as the style";
}

function usePainting(file) {
  if (!file || !state.paintingModel) return;
  setError("");
  state.painting = file;
  selectStyle(null);
  const img = $("painting-preview");
  img.src = URL.createObjectURL(file);
  img.alt = `Style painting: ${file.name}`;
  img.hidden = false;
  $("painting-text").textContent = `${file.name} as the style — drop or choose another`;
  updateGo();
}

async function loadCatalogue() {
  const gallery = $("gallery");
  try {
    const [styles, models] = await Promise.all([fetch("/v1/styles"), fetch("/v1/models")]);
    if (!styles.ok) throw new Error(await errorText(styles));
    const list = await styles.json();
    gallery.textContent = "";
    for (const style of list) {
      const item = document.createElement("button");
      item.type = "button";
      item.className = "style-item";
      item.dataset.name = style.name;
      item.setAttribute("aria-pressed", "false");
      item.title = style.description;
      if (style.thumbnail) {
        const img = document.createElement("img");
        img.src = style.thumbnail;
        img.alt = "";
        img.loading = "lazy";
        item.append(img);
      }
      const label = document.createElement("span");
      label.textContent = style.name.replace(/_/g, " ");
      item.append(label);
      item.addEventListener("click", () => selectStyle(style.name));
      gallery.append(item);
    }
    if (!list.length) gallery.textContent = "This server offers no styles.";
    else selectStyle(list[0].name);
    if (models.ok) {
      const painter = (await models.json()).find((m) => m.takes_style_image);
      state.paintingModel = painter ? painter.name : null;
    }
  } catch (e) {
    gallery.textContent = "";
    setError(`Could not load the styles: ${e.message}`);
  }
  const drop = $("painting-drop");
  $("painting-input").disabled = !state.paintingModel;
  drop.classList.toggle("disabled", !state.paintingModel);
  const text = $("painting-text");
  if (state.paintingModel) {
    text.textContent = "Or drop a painting to use as the style";
  } else {
    const option = document.createElement("code");
    option.className = "nowrap";
    option.textContent = "--model";
    text.replaceChildren("A painting as the style: this server has no model for it (start it with ", option,
                         " and an MSG-Net model)");
  }
}

// --- drag and drop -------------------------------------------------------------------------------
function dropZone(zone, use) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files.length) use(e.dataTransfer.files[0]);
  });
}

// --- the job -------------------------------------------------------------------------------------
function showProgress(done, total, status) {
  const bar = $("progress");
  bar.hidden = false;
  if (total > 0) { bar.max = total; bar.value = done; } else { bar.removeAttribute("value"); }
  setStatus(status === "queued" ? "Waiting for a free worker…"
            : total > 0 ? `Painting: ${done} of ${total} tile${total === 1 ? "" : "s"}` : "Painting…");
}

function finishJob() {
  if (state.events) state.events.close();
  state.events = null;
  state.job = null;
  $("cancel").hidden = true;
  updateGo();
}

async function start() {
  setError("");
  const form = new FormData();
  form.append("photo", state.photo, state.photo.name);
  if (state.painting) {
    form.append("style_image", state.painting, state.painting.name);
    form.append("model", state.paintingModel);
  } else {
    form.append("style", state.style);
  }
  form.append("strength", $("strength").value);
  form.append("preserve_colors", $("preserve").checked ? "true" : "false");
  if ($("size").value) form.append("max_side", $("size").value);
  $("go").disabled = true;
  showProgress(0, 0, "queued");
  setStatus("Uploading…");
  let response;
  try {
    response = await fetch("/v1/jobs", { method: "POST", body: form });
  } catch (e) {
    setError(`Could not reach the server: ${e.message}`);
    $("progress").hidden = true; setStatus(""); updateGo();
    return;
  }
  if (!response.ok) {
    const retry = response.headers.get("Retry-After");
    setError(await errorText(response) + (retry ? ` (try again in ${retry} s)` : ""));
    $("progress").hidden = true; setStatus(""); updateGo();
    return;
  }
  const job = await response.json();
  state.job = job;
  $("cancel").hidden = false;
  follow(job);
}

function follow(job) {
  const events = new EventSource(job.events);
  state.events = events;
  events.addEventListener("progress", (e) => {
    const j = JSON.parse(e.data);
    showProgress(j.progress.done, j.progress.total, j.status);
  });
  events.addEventListener("done", async (e) => {
    const j = JSON.parse(e.data);
    showProgress(j.progress.total || 1, j.progress.total || 1, "done");
    finishJob();
    await showResult(j);
  });
  events.addEventListener("failed", (e) => {
    const j = JSON.parse(e.data);
    setError(j.error || "the job failed");
    setStatus("");
    finishJob();
  });
  events.addEventListener("cancelled", () => { setStatus("Cancelled."); finishJob(); });
  events.onerror = () => {
    if (state.events !== events) return;
    if (events.readyState === EventSource.CLOSED) {
      setError("Lost the connection to the server.");
      finishJob();
    }
  };
}

async function cancel() {
  if (!state.job) return;
  const id = state.job.id;
  setStatus("Cancelling…");
  await fetch(`/v1/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
}

async function showResult(job) {
  setStatus("Fetching the result…");
  const response = await fetch(job.result);
  if (!response.ok) { setError(await errorText(response)); setStatus(""); return; }
  const blob = await response.blob();
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = URL.createObjectURL(blob);
  const after = $("after");
  const loaded = new Promise((resolve) => { after.onload = resolve; after.onerror = resolve; });
  after.src = state.resultUrl;
  $("before").src = state.photoUrl;
  await loaded;
  $("result").hidden = false;
  const name = (response.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
  const link = $("download");
  link.href = state.resultUrl;
  link.download = name ? name[1] : "styled";
  link.textContent = `Download ${link.download}`;
  $("result-size").textContent = `${job.width} × ${job.height} px, ${(blob.size / 1024).toFixed(0)} KiB`;
  setStatus("Done.");
  setCompare($("compare-range").value);
  $("result").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

function setCompare(percent) {
  $("before-clip").style.clipPath = `inset(0 ${100 - percent}% 0 0)`;
  $("handle").style.left = `${percent}%`;
}

// --- wiring --------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("photo-input").addEventListener("change", (e) => usePhoto(e.target.files[0]));
  $("painting-input").addEventListener("change", (e) => usePainting(e.target.files[0]));
  dropZone($("photo-drop"), usePhoto);
  dropZone($("painting-drop"), usePainting);
  $("strength").addEventListener("input", (e) => {
    $("strength-value").textContent = `${Math.round(e.target.value * 100)}%`;
  });
  $("compare-range").addEventListener("input", (e) => setCompare(e.target.value));
  $("go").addEventListener("click", start);
  $("cancel").addEventListener("click", cancel);
  loadCatalogue();
});

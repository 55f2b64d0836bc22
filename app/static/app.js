// Wave completion page: pick a sample or a CSV, call the API, draw one SVG panel per feature. No dependencies.
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const SAMPLE_COUNT = 8;
  const PANEL = { width: 420, height: 180, left: 46, right: 10, top: 26, bottom: 22 };

  const $ = (id) => document.getElementById(id);
  const el = {
    form: $("input-form"),
    modelInfo: $("model-info"),
    modelName: $("model-name"),
    modelVersion: $("model-version"),
    modelSelect: $("model-select"),
    modelLimits: $("model-limits"),
    latency: $("latency"),
    sourceSample: $("source-sample"),
    sourceCsv: $("source-csv"),
    sampleBox: $("source-sample-box"),
    csvBox: $("source-csv-box"),
    sampleSelect: $("sample-select"),
    newSamples: $("new-samples"),
    csvInput: $("csv-input"),
    csvFile: $("csv-file"),
    csvFileName: $("csv-file-name"),
    csvHint: $("csv-hint"),
    horizon: $("horizon"),
    level: $("interval-level"),
    apiKeyBox: $("api-key-box"),
    apiKey: $("api-key"),
    complete: $("complete-button"),
    download: $("download-png"),
    status: $("status"),
    error: $("error"),
    chart: $("chart"),
  };

  const state = {
    models: [], // GET /models -> models
    model: null, // the chosen one of them
    samples: [], // GET /samples -> samples
    seed: 0,
    busy: false,
  };

  /** An error answered by the API: `detail` in words, plus every problem when there are several. */
  class ApiError extends Error {
    constructor(message, errors = [], status = 0) {
      super(message);
      this.errors = errors;
      this.status = status;
    }
  }

  // ---------------------------------------------------------------- API

  async function api(path, options = {}) {
    let response;
    try {
      response = await fetch(path, options);
    } catch (err) {
      throw new ApiError(`Could not reach the service (${err.message}).`);
    }
    if (response.ok) return response;
    let detail = `The service answered HTTP ${response.status}.`;
    let errors = [];
    try {
      const body = await response.json();
      if (body && typeof body.detail === "string") detail = body.detail;
      if (body && Array.isArray(body.errors)) errors = body.errors;
    } catch (_) {
      // not JSON: keep the status line
    }
    throw new ApiError(detail, errors, response.status);
  }

  function postJson(path, body) {
    const headers = { "Content-Type": "application/json" };
    const key = el.apiKey.value.trim();
    if (key) headers["X-API-Key"] = key;
    return api(path, { method: "POST", headers, body: JSON.stringify(body) });
  }

  async function loadModels() {
    try {
      const { models } = await (await api("models")).json();
      state.models = models;
      el.modelSelect.replaceChildren(
        ...models.map((model) => {
          const option = new Option(`${model.name} v${model.version}${model.default ? " (default)" : ""}`, model.name);
          option.selected = model.default;
          return option;
        }),
      );
      el.modelSelect.disabled = models.length < 2;
      chooseModel(el.modelSelect.value);
      el.modelInfo.dataset.state = "ready";
    } catch (err) {
      if (err.status === 503) {
        el.modelName.textContent = "loading…";
        setTimeout(loadModels, 1000);
        return;
      }
      el.modelInfo.dataset.state = "error";
      showError(err);
    }
  }

  /** Use the model named `name` from now on: its limits go into the form and the hints. */
  function chooseModel(name) {
    const model = state.models.find((m) => m.name === name);
    if (!model) return;
    state.model = model;
    showModel(model.name, model.version);
    el.horizon.max = String(model.horizon);
    if (Number(el.horizon.value) > model.horizon) el.horizon.value = String(model.horizon);
    const { min, max, context } = model.input_length;
    const features = model.features === "any" ? "any number of features" : `${model.features} features`;
    el.modelLimits.textContent =
      `${features}; ${min} to ${max} observed steps (it reads the last ${context}); up to ${model.horizon} predicted.`;
    el.modelLimits.dataset.features = String(model.features);
    const columns = model.features === "any" ? "any number" : String(model.features);
    el.csvHint.textContent =
      `One row per step (oldest first), one column per feature (${columns}), optional header row, optional ` +
      `time column first (dates or times, continued in the answer); ` +
      `at least ${min} rows. The model reads the last ${context}.`;
  }

  async function loadSamples(seed) {
    el.sampleSelect.disabled = true;
    el.newSamples.disabled = true;
    try {
      const model = state.model ? `&model=${encodeURIComponent(state.model.name)}` : "";
      const body = await (await api(`samples?count=${SAMPLE_COUNT}&seed=${seed}${model}`)).json();
      state.seed = seed;
      state.samples = body.samples;
      el.sampleSelect.replaceChildren(
        ...body.samples.map((sample, i) => {
          const option = document.createElement("option");
          option.value = String(i);
          option.dataset.sampleId = sample.id;
          option.textContent = `Sample ${i + 1} · ${sample.wave.length} steps observed`;
          return option;
        }),
      );
      el.sampleSelect.disabled = false;
      if (sourceName() === "sample") previewSample();
    } catch (err) {
      el.sampleSelect.replaceChildren(new Option("No samples available"));
      if (err.status === 503) {
        setTimeout(() => loadSamples(seed), 1000);
      } else {
        showError(err);
      }
    } finally {
      el.newSamples.disabled = false;
    }
  }

  // ---------------------------------------------------------------- input

  const sourceName = () => (el.sourceCsv.checked ? "csv" : "sample");

  function setSource(name) {
    el.sourceSample.checked = name === "sample";
    el.sourceCsv.checked = name === "csv";
    el.sampleBox.dataset.active = String(name === "sample");
    el.csvBox.dataset.active = String(name === "csv");
  }

  /** The pasted CSV read by the service (POST /csv, the reader /predict uses for CSV bodies): rows of numbers
   * (null for a gap), the header's names and a time column's stamps (ds, or null). A cell that is not a number, or
   * a time stamp that repeats, goes back or breaks the regular steps, comes back as a 422 naming its line. */
  async function readCsv(text) {
    if (text.trim() === "") throw new ApiError("The CSV is empty: paste or upload one row per step.");
    return (await api("csv", { method: "POST", headers: { "Content-Type": "text/csv" }, body: text })).json();
  }

  /** What to send: the chosen sample or the parsed CSV, with the truth when there is one. */
  function sampleInput() {
    const sample = state.samples[Number(el.sampleSelect.value)];
    if (!sample) throw new ApiError("The samples are not loaded yet; try again in a moment.");
    return { wave: sample.wave, truth: sample.truth, names: null, ds: null, label: `sample ${sample.id}`, csv: false };
  }

  async function currentInput() {
    if (sourceName() === "sample") return sampleInput();
    const { wave, names, ds } = await readCsv(el.csvInput.value);
    return { wave, truth: null, names, ds, label: "your CSV", csv: true };
  }

  function requestBody(input) {
    const raw = el.horizon.value.trim();
    const horizon = Number(raw);
    // anything but an integer goes as typed, so the API says what is wrong with it
    const body = { wave: input.wave, horizon: raw !== "" && Number.isInteger(horizon) ? horizon : raw || null };
    if (state.model) body.model = state.model.name;
    if (el.level.value) body.level = el.level.value.split(",").map(Number);
    if (input.ds) body.ds = input.ds; // the answer continues them
    return body;
  }

  // ---------------------------------------------------------------- messages

  function showModel(name, version) {
    el.modelName.textContent = name;
    el.modelVersion.textContent = version;
  }

  function showError(err, input = null) {
    const message = err instanceof ApiError ? err.message : `Something went wrong: ${err.message || err}`;
    const box = el.error;
    box.replaceChildren();
    const strong = document.createElement("strong");
    strong.textContent = message;
    box.append(strong);
    const more = (err.errors || []).filter((m) => m !== message);
    if (more.length) {
      const list = document.createElement("ul");
      for (const m of more) {
        const item = document.createElement("li");
        item.textContent = m;
        list.append(item);
      }
      box.append(list);
    }
    if (input && input.csv && /\brow \d+/.test(message)) {
      const note = document.createElement("span");
      note.className = "note";
      note.textContent = "Rows and columns are counted from 0, without the header row.";
      box.append(note);
    }
    if (err.status === 401) el.apiKeyBox.open = true;
    box.hidden = false;
    el.status.textContent = "The wave was not completed.";
  }

  function clearError() {
    el.error.hidden = true;
    el.error.replaceChildren();
  }

  // ---------------------------------------------------------------- actions

  function previewSample() {
    clearError();
    try {
      const input = sampleInput();
      drawChart({ observed: input.wave, truth: input.truth, predicted: null, names: null });
      el.chart.dataset.state = "preview";
      el.status.textContent = `${input.label}: ${input.wave.length} steps observed. Press “Complete the wave”.`;
    } catch (_) {
      // samples not loaded yet
    }
  }

  function setBusy(busy, label) {
    state.busy = busy;
    el.complete.disabled = busy;
    el.download.disabled = busy;
    el.complete.textContent = busy && label ? label : "Complete the wave";
  }

  async function complete(event) {
    event.preventDefault();
    if (state.busy) return;
    clearError();
    let input = null;
    try {
      input = await currentInput();
    } catch (err) {
      failed(err, null);
      return;
    }
    setBusy(true, "Completing…");
    el.chart.dataset.state = "loading";
    el.status.textContent = `Completing ${input.label}…`;
    const started = performance.now();
    try {
      const body = await (await postJson("predict", requestBody(input))).json();
      const ms = performance.now() - started;
      el.latency.textContent = `${Math.round(ms)} ms`;
      el.latency.dataset.ms = ms.toFixed(1);
      showModel(body.model.name, body.model.version);
      const truth = input.truth ? input.truth.slice(0, body.horizon) : null;
      const intervals = body.intervals || null;
      const stamps = body.ds ? { observed: input.ds, predicted: body.ds } : null;
      drawChart({ observed: input.wave, truth, predicted: body.prediction, names: input.names, intervals, stamps });
      el.chart.dataset.state = "ready";
      const until = body.ds
        ? ` (${body.ds[0]} to ${body.ds[body.ds.length - 1]}, ${body.frequency})`
        : "";
      el.status.textContent =
        `${input.label}: ${input.wave.length} steps observed` +
        (body.filled ? ` (${body.filled} missing values filled)` : "") +
        `, ${body.horizon} predicted${until} by ` +
        `${body.model.name} v${body.model.version} in ${Math.round(ms)} ms.`;
    } catch (err) {
      failed(err, input);
    } finally {
      setBusy(false);
    }
  }

  function failed(err, input) {
    el.latency.textContent = "–";
    el.latency.dataset.ms = "";
    if (input && input.wave.length && input.wave.every((row) => row.length === input.wave[0].length)) {
      drawChart({ observed: input.wave, truth: null, predicted: null, names: input.names });
    } else {
      drawChart(null);
    }
    el.chart.dataset.state = "error";
    showError(err, input);
  }

  async function downloadPng() {
    if (state.busy) return;
    clearError();
    let input = null;
    try {
      input = await currentInput();
      setBusy(true);
      const blob = await (await postJson("predict/plot", requestBody(input))).blob();
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = "wave-completion.png";
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    } catch (err) {
      showError(err, input);
    } finally {
      setBusy(false);
    }
  }

  // ---------------------------------------------------------------- chart

  function svg(name, attributes = {}, parent = null) {
    const node = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    if (parent) parent.append(node);
    return node;
  }

  function niceTicks(low, high, count) {
    const span = high - low;
    let step = 10 ** Math.floor(Math.log10(span / count));
    const ratio = span / count / step;
    if (ratio >= 7.5) step *= 10;
    else if (ratio >= 3.5) step *= 5;
    else if (ratio >= 1.5) step *= 2;
    const ticks = [];
    for (let t = Math.ceil(low / step) * step; t <= high + step * 1e-9; t += step) ticks.push(t);
    return { ticks, step };
  }

  function formatTick(value, step) {
    if (Math.abs(value) < step * 1e-6) value = 0;
    const abs = Math.abs(value);
    if (abs !== 0 && (abs >= 1e5 || abs < 1e-3)) return value.toExponential(1);
    const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step))));
    return value.toFixed(decimals);
  }

  function extent(arrays) {
    let low = Infinity;
    let high = -Infinity;
    for (const values of arrays) {
      for (const v of values) {
        if (v === null) continue; // a gap
        if (v < low) low = v;
        if (v > high) high = v;
      }
    }
    if (!Number.isFinite(low)) return [0, 1];
    if (low === high) {
      const pad = Math.abs(low) * 0.1 || 1;
      return [low - pad, high + pad];
    }
    const pad = (high - low) * 0.08;
    return [low - pad, high + pad];
  }

  function pathData(xs, ys, x, y) {
    let d = "";
    let drawing = false; // a gap (null) breaks the line
    for (let i = 0; i < xs.length; i++) {
      if (ys[i] === null) {
        drawing = false;
        continue;
      }
      d += `${drawing ? "L" : "M"}${x(xs[i]).toFixed(1)},${y(ys[i]).toFixed(1)}`;
      drawing = true;
    }
    return d;
  }

  /** An x-axis label: the step's time stamp when the wave has them (shortened: no seconds, no year beside a
   * time of day), else the step number. */
  function stepLabel(t, n, stamps) {
    const stamp = stamps ? (t < n ? stamps.observed[t] : stamps.predicted[t - n]) : undefined;
    if (stamp === undefined) return String(t);
    const text = String(stamp);
    return text.includes("T") ? text.slice(5, 16).replace("T", " ") : text;
  }

  /** Small multiples: per feature the observed steps the model reads, the prediction and the truth. */
  function drawChart(data) {
    const chart = el.chart;
    chart.replaceChildren();
    const stamps = data && data.stamps ? data.stamps : null; // time stamps of the observed and predicted steps
    const observed = data ? data.observed : [];
    const predicted = data && data.predicted ? data.predicted : null;
    const truth = data && data.truth ? data.truth : null;
    // prediction intervals, widest first so the narrower ones are drawn over them
    const bands = data && data.intervals && predicted
      ? Object.entries(data.intervals).sort((a, b) => Number(b[0]) - Number(a[0]))
      : [];
    const features = observed.length ? observed[0].length : 0;
    Object.assign(chart.dataset, {
      features: String(features),
      observedPoints: String(observed.length),
      predictedSeries: String(predicted ? features : 0),
      predictedPoints: String(predicted ? predicted.length : 0),
      truthSeries: String(truth ? features : 0),
      bands: bands.map(([level]) => level).join(","),
      stamps: stamps ? `${stamps.predicted[0]}/${stamps.predicted[stamps.predicted.length - 1]}` : "",
    });
    if (!features) return;

    const n = observed.length;
    const context = state.model ? state.model.input_length.context : 300;
    const start = Math.max(0, n - context);
    const ahead = Math.max(predicted ? predicted.length : 0, truth ? truth.length : 0);
    const x0 = start;
    const x1 = Math.max(n - 1 + ahead, n);
    const { width, height, left, right, top, bottom } = PANEL;
    const x = (t) => left + ((t - x0) / (x1 - x0)) * (width - left - right);
    const xTicks = niceTicks(x0, x1, stamps ? 3 : 5).ticks.filter((t) => t >= x0 && t <= x1); // dates are wider

    for (let f = 0; f < features; f++) {
      const tObserved = [];
      const vObserved = [];
      for (let t = start; t < n; t++) {
        tObserved.push(t);
        vObserved.push(observed[t][f]);
      }
      const vPredicted = predicted ? predicted.map((row) => row[f]) : [];
      const vTruth = truth ? truth.map((row) => row[f]) : [];
      const vBands = bands.map(([, band]) => [band.lower.map((row) => row[f]), band.upper.map((row) => row[f])]);
      const [low, high] = extent([vObserved, vPredicted, vTruth, ...vBands.flat()]);
      const y = (v) => top + ((high - v) / (high - low)) * (height - top - bottom);

      const panel = document.createElement("figure");
      panel.className = "panel";
      panel.dataset.feature = String(f);
      panel.dataset.predictedPoints = String(vPredicted.length);
      const title = data.names && data.names[f] ? data.names[f] : `Feature ${f + 1}`;
      const root = svg("svg", {
        viewBox: `0 0 ${width} ${height}`,
        role: "img",
        "aria-label": `${title}: ${vObserved.length} observed steps shown, ${vPredicted.length} predicted`,
      });
      panel.append(root);

      if (ahead) svg("rect", { class: "future", x: x(n - 0.5), y: top, width: x(x1) - x(n - 0.5), height: height - top - bottom }, root);
      const { ticks, step } = niceTicks(low, high, 4);
      for (const t of ticks) {
        if (t < low || t > high) continue;
        svg("line", { class: "grid", x1: left, x2: width - right, y1: y(t), y2: y(t) }, root);
        svg("text", { class: "tick", x: left - 5, y: y(t) + 3.5, "text-anchor": "end" }, root).textContent = formatTick(t, step);
      }
      svg("line", { class: "axis", x1: left, x2: width - right, y1: height - bottom, y2: height - bottom }, root);
      for (const t of xTicks) {
        svg("text", { class: "tick", x: x(t), y: height - 6, "text-anchor": "middle" }, root).textContent = stepLabel(Math.round(t), n, stamps);
      }
      if (ahead) svg("line", { class: "now", x1: x(n - 0.5), x2: x(n - 0.5), y1: top, y2: height - bottom }, root);

      const last = [n - 1, observed[n - 1][f]];
      const after = (values) => values.map((_, i) => n + i);
      svg("path", { class: "series observed", d: pathData(tObserved, vObserved, x, y), "data-points": vObserved.length }, root);
      if (truth) {
        svg("path", { class: "series truth", d: pathData([last[0], ...after(vTruth)], [last[1], ...vTruth], x, y), "data-points": vTruth.length }, root);
      }
      vBands.forEach(([lower, upper], i) => {
        const ts = after(lower);
        const d = `${pathData(ts, upper, x, y)} L${pathData([...ts].reverse(), [...lower].reverse(), x, y).slice(1)} Z`;
        svg("path", { class: i ? "band inner" : "band", d, "data-level": bands[i][0] }, root);
      });
      if (predicted) {
        svg("path", {
          class: "series predicted",
          d: pathData([last[0], ...after(vPredicted)], [last[1], ...vPredicted], x, y),
          "data-points": vPredicted.length,
        }, root);
      }

      svg("text", { class: "title", x: left, y: 16 }, root).textContent = title;
      if (predicted && truth) {
        const m = Math.min(vPredicted.length, vTruth.length);
        let sum = 0;
        for (let i = 0; i < m; i++) sum += Math.abs(vPredicted[i] - vTruth[i]);
        const mae = sum / m;
        const metric = svg("text", { class: "metric", x: width - right, y: 16, "text-anchor": "end" }, root);
        metric.textContent = `MAE ${formatTick(mae, mae / 100 || 1)}`;
        panel.dataset.mae = String(mae);
      }
      chart.append(panel);
    }
  }

  // ---------------------------------------------------------------- wiring

  el.form.addEventListener("submit", complete);
  el.download.addEventListener("click", downloadPng);
  el.sourceSample.addEventListener("change", () => {
    setSource("sample");
    previewSample();
  });
  el.sourceCsv.addEventListener("change", () => {
    setSource("csv");
    clearError();
  });
  el.sampleSelect.addEventListener("change", () => {
    setSource("sample");
    previewSample();
  });
  el.modelSelect.addEventListener("change", () => {
    chooseModel(el.modelSelect.value);
    clearError();
    loadSamples(state.seed);
  });
  el.newSamples.addEventListener("click", () => {
    setSource("sample");
    loadSamples(state.seed + 1);
  });
  el.csvInput.addEventListener("input", () => setSource("csv"));
  el.csvInput.addEventListener("focus", () => setSource("csv"));
  el.csvFile.addEventListener("change", async () => {
    const file = el.csvFile.files && el.csvFile.files[0];
    if (!file) return;
    el.csvInput.value = await file.text();
    el.csvFileName.textContent = `${file.name} (${(file.size / 1024).toFixed(1)} kB)`;
    setSource("csv");
    clearError();
  });

  loadModels().then(() => loadSamples(0));
})();

// The A/B view's shadow section: GET /api/ab/shadows every few seconds (the same period as
// ab.js), one row per shadow and its latest disagreements. Text goes in as text nodes only:
// the disagreements are reviews people wrote.
"use strict";

(() => {
  const asked = Number(new URLSearchParams(location.search).get("every"));
  const EVERY_MS = Number.isFinite(asked) && asked >= 1 ? asked * 1000 : 5000;
  const $ = (id) => document.getElementById(id);
  const none = "\u2014";
  const percent = (value, digits = 1) =>
    value === null || value === undefined ? none : `${(value * 100).toFixed(digits)}%`;
  const ms = (value) => (value === null || value === undefined ? none : `${value.toFixed(1)} ms`);
  const number = (value, digits = 3) =>
    value === null || value === undefined ? none : value.toFixed(digits);

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.append(td);
  }

  function shadowRow(shadow) {
    const row = document.createElement("tr");
    row.dataset.shadow = shadow.name;
    const name = document.createElement("th");
    name.scope = "row";
    name.textContent = shadow.name;
    row.append(name);
    cell(row, shadow.model);
    cell(row, percent(shadow.fraction, 0), "fraction");
    cell(row, String(shadow.copies), "copies");
    const errors = `${shadow.errors} (${percent(shadow.error_rate)})`;
    cell(row, shadow.copies ? errors : "0", "errors");
    cell(row, String(shadow.dropped), "dropped");
    cell(row, ms(shadow.pass_ms.p50), "pass");
    cell(row, ms(shadow.latency_ms.p95), "p95");
    const agreement = shadow.reviews
      ? `${percent(shadow.agreement)} of ${shadow.reviews} reviews`
      : "no answers yet";
    cell(row, agreement, "agreement");
    cell(row, number(shadow.mean_probability_gap), "gap");
    if (shadow.last_error) row.title = `Last error: ${shadow.last_error}`;
    return row;
  }

  function side(name, answer) {
    const span = document.createElement("span");
    span.className = `answer ${answer.label}`;
    span.textContent = `${name}: ${answer.label} (${answer.probability.toFixed(2)})`;
    return span;
  }

  function disagreement(shadow, item) {
    const entry = document.createElement("li");
    entry.dataset.shadow = shadow.name;
    const quote = document.createElement("q");
    quote.textContent = item.review;
    entry.append(quote, " ", side(item.variant, item.live), " ", side(shadow.name, item.shadow));
    return entry;
  }

  function render(data) {
    $("shadows").hidden = data.shadows.length === 0;
    $("shadow-rows").replaceChildren(...data.shadows.map(shadowRow));
    const items = data.shadows.flatMap((shadow) =>
      shadow.disagreements.map((item) => disagreement(shadow, item)));
    $("disagreements").replaceChildren(...items);
    $("no-disagreements").hidden = items.length > 0;
    const capture = data.capture;
    $("capture").hidden = !capture;
    if (capture) {
      $("capture").textContent = `Data capture: ${capture.captured} requests captured ` +
        `(${capture.percent}% sampled${capture.keep_text ? "" : ", without review text"}), ` +
        `${capture.dropped} dropped, ${capture.deleted_files} old files deleted.`;
    }
  }

  async function refresh() {
    try {
      const response = await fetch("/api/ab/shadows", { headers: { Accept: "application/json" } });
      if (response.ok) render(await response.json());
    } catch (error) {
      // ab.js reports an unreachable endpoint; this section keeps its last figures.
    } finally {
      document.body.dataset.shadowsRefreshed = String(Number(document.body.dataset.shadowsRefreshed || 0) + 1);
    }
  }

  refresh();
  setInterval(refresh, EVERY_MS);
})();

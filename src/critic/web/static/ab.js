// The A/B view: GET /api/ab every few seconds, one table row per variant. Text goes in as
// text nodes only.
"use strict";

(() => {
  // ?every=SECONDS changes the refresh period (at least 1 s).
  const asked = Number(new URLSearchParams(location.search).get("every"));
  const EVERY_MS = Number.isFinite(asked) && asked >= 1 ? asked * 1000 : 5000;
  const $ = (id) => document.getElementById(id);

  const percent = (value, digits = 0) =>
    value === null || value === undefined ? "\u2014" : `${(value * 100).toFixed(digits)}%`;
  const ms = (value) => (value === null || value === undefined ? "\u2014" : `${value.toFixed(1)} ms`);

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.append(td);
    return td;
  }

  function accuracy(feedback) {
    if (!feedback || !feedback.feedback) return "no feedback yet";
    const [low, high] = feedback.interval;
    return `${percent(feedback.accuracy, 1)} (${percent(low, 1)}\u2013${percent(high, 1)})`;
  }

  function render(data) {
    $("endpoint").textContent = data.endpoint;
    const rows = $("rows");
    rows.replaceChildren();
    for (const variant of data.variants) {
      const row = document.createElement("tr");
      row.dataset.variant = variant.name;
      const name = document.createElement("th");
      name.scope = "row";
      const link = document.createElement("a");
      link.href = `/?variant=${encodeURIComponent(variant.name)}`;
      link.textContent = variant.name;
      link.title = `Ask ${variant.name} only`;
      name.append(link);
      row.append(name);
      cell(row, variant.model);
      // No weight: a SageMaker endpoint the page may not describe shares the traffic itself.
      const weight = variant.weight === null ? "weight unknown" : `weight ${variant.weight}`;
      cell(row, `${percent(variant.share, 1)} (${weight})`, "share");
      cell(row, String(variant.requests), "requests");
      cell(row, String(variant.errors), "errors");
      cell(row, ms(variant.latency_ms.p50), "p50");
      cell(row, ms(variant.latency_ms.p95), "p95");
      cell(row, percent(variant.positive_share, 1), "positive");
      cell(row, variant.feedback ? String(variant.feedback.feedback) : "off", "feedback");
      cell(row, data.feedback_enabled ? accuracy(variant.feedback) : "feedback is off", "accuracy");
      rows.append(row);
    }
    $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}.`;
  }

  async function refresh() {
    try {
      const response = await fetch("/api/ab", { headers: { Accept: "application/json" } });
      const body = await response.json().catch(() => null);
      if (!response.ok || !body) {
        throw new Error(body && body.message ? body.message : `the endpoint answered ${response.status}`);
      }
      render(body);
      $("error").hidden = true;
    } catch (error) {
      $("error-message").textContent = `Could not refresh: ${error.message || "the endpoint could not be reached"}. Showing the last figures.`;
      $("error").hidden = false;
    } finally {
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    }
  }

  $("every").textContent = String(EVERY_MS / 1000);
  refresh();
  setInterval(refresh, EVERY_MS);
})();

// The A/B view's rollout section: GET /rollout every few seconds (the period of ab.js), the
// running (or latest) rollout's steps, the guardrails' latest figures and its history; a form
// to start one and a button to stop it, through the admin routes with the Promote form's
// token. Hidden where there are no rollouts (feedback off, or the page in front of SageMaker).
"use strict";

(() => {
  const asked = Number(new URLSearchParams(location.search).get("every"));
  const EVERY_MS = Number.isFinite(asked) && asked >= 1 ? asked * 1000 : 5000;
  const $ = (id) => document.getElementById(id);
  const percent = (value) => `${Math.round(value * 1000) / 10}%`;
  const WORDS = {
    running: "running",
    completed: "completed",
    rolled_back: "rolled back",
    stopped: "stopped (kept at its step)",
  };

  function item(list, text, className) {
    const li = document.createElement("li");
    li.textContent = text;
    if (className) li.className = className;
    list.append(li);
  }

  function guardrailText(figures) {
    const parts = [];
    const c = figures.challenger;
    const h = figures.champion;
    parts.push(`requests ${c.requests} vs ${h.requests}`);
    parts.push(`server errors ${c.server_errors} vs ${h.server_errors}`);
    parts.push(`503 ${c.unavailable} vs ${h.unavailable}`);
    if (c.p95_ms !== null && h.p95_ms !== null) {
      parts.push(`p95 ${c.p95_ms.toFixed(1)} vs ${h.p95_ms.toFixed(1)} ms`);
    }
    if (figures.accuracy && figures.accuracy.interval) {
      const [low, high] = figures.accuracy.interval;
      parts.push(`accuracy difference ${percent(low)} to ${percent(high)}`);
    }
    return `This step so far (challenger vs champion): ${parts.join("; ")}.`;
  }

  function render(body) {
    const section = $("rollout");
    if (!body.enabled) {
      section.hidden = true;
      return;
    }
    section.hidden = false;
    const rollout = body.rollout;
    $("rollout-none").hidden = rollout !== null;
    $("rollout-current").hidden = rollout === null;
    $("rollout-stop").hidden = !rollout || rollout.status !== "running";
    if (!rollout) return;
    section.dataset.status = rollout.status;
    $("rollout-summary").textContent =
      `${rollout.variant} against ${rollout.champion}: ${WORDS[rollout.status] || rollout.status}` +
      (rollout.status === "running"
        ? `, at ${percent(rollout.share)} of the traffic, ${Math.ceil(rollout.bake_left_s)} s left in this step.`
        : ".");
    const steps = $("rollout-steps");
    steps.replaceChildren();
    rollout.steps.forEach((share, index) => {
      const reached = index < rollout.step || (index === rollout.step && rollout.status !== "rolled_back");
      item(steps, percent(share), index === rollout.step ? "current" : reached ? "done" : "");
    });
    $("rollout-figures").textContent = body.figures ? guardrailText(body.figures) : "";
    const history = $("rollout-history");
    history.replaceChildren();
    for (const event of rollout.history.slice(-8).reverse()) {
      const when = new Date(event.at * 1000).toLocaleTimeString();
      let text = `${when}: ${event.event.replace("_", " ")} at ${percent(event.share)}`;
      if (event.trips) text += ` \u2014 ${event.trips.map((trip) => trip.text).join("; ")}`;
      if (event.by) text += ` by the ${event.by}`;
      item(history, text, event.event === "rolled_back" ? "tripped" : "");
    }
  }

  async function refresh() {
    try {
      const response = await fetch("/rollout", { headers: { Accept: "application/json" } });
      if (response.status === 404) {
        render({ enabled: false });
        return;
      }
      const body = await response.json();
      render(body);
      const choices = $("rollout-variant");
      if (!choices.options.length) {
        const variants = await (await fetch("/variants")).json();
        for (const variant of variants.variants) choices.add(new Option(variant.name, variant.name));
      }
    } catch (error) {
      // ab.js shows the endpoint being unreachable; this section keeps its last figures.
    } finally {
      document.body.dataset.rolloutRefreshed = String(Number(document.body.dataset.rolloutRefreshed || 0) + 1);
    }
  }

  async function start(event) {
    event.preventDefault();
    const status = $("rollout-status");
    const plan = {
      variant: $("rollout-variant").value,
      steps: $("rollout-steps-input").value.split(",").map((part) => Number(part) / 100),
      bake_s: Number($("rollout-bake").value) * 60,
    };
    try {
      const body = await window.critic.postAdmin("/admin/rollout", plan);
      status.textContent = `Rollout of ${body.variant} started at ${percent(body.share)}.`;
    } catch (error) {
      status.textContent = `Not started: ${error.message || "the endpoint could not be reached"}.`;
    }
    refresh();
  }

  async function stop() {
    const status = $("rollout-status");
    try {
      await window.critic.postAdmin("/admin/rollout/stop", { roll_back: true });
      status.textContent = "Stopped: the traffic is back where it started.";
    } catch (error) {
      status.textContent = `Not stopped: ${error.message || "the endpoint could not be reached"}.`;
    }
    refresh();
  }

  $("rollout-form").addEventListener("submit", start);
  $("rollout-stop").addEventListener("click", stop);
  refresh();
  setInterval(refresh, EVERY_MS);
})();

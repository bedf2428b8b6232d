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
      cell(row, variant.unusual_share === undefined ? "" : percent(variant.unusual_share, 1), "unusual");
      cell(row, variant.feedback ? String(variant.feedback.feedback) : "off", "feedback");
      cell(row, data.feedback_enabled ? accuracy(variant.feedback) : "feedback is off", "accuracy");
      rows.append(row);
    }
    renderDecision(data.decision, data.variants);
    $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}.`;
  }

  // --- The decision (issue 14): each challenger against the champion, and promote ---------

  // The test's parameters as the API takes them; the page asks in points of accuracy.
  function decisionQuery() {
    const query = new URLSearchParams();
    query.set("min_difference", String(Number($("min-difference").value) / 100));
    query.set("alpha", $("alpha").value);
    query.set("power", $("power").value);
    return query.toString();
  }

  const points = (value, digits = 1) =>
    value === null || value === undefined
      ? "\u2014"
      : `${value >= 0 ? "+" : "\u2212"}${Math.abs(value * 100).toFixed(digits)} points`;

  function term(list, name, value, className) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value;
    if (className) dd.className = className;
    list.append(dt, dd);
  }

  // The always-valid test's interval, p-value and (with several comparisons) Holm's.
  function testTerms(list, decision, entry, intervalName, beforeStart) {
    const interval = entry.interval
      ? `${points(entry.interval[0])} to ${points(entry.interval[1])}`
      : beforeStart;
    term(list, intervalName, interval, "interval");
    term(list, "Always-valid p-value", entry.started ? entry.p_value.toPrecision(2) : "\u2014", "p-value");
    if (decision.correction === "holm") {
      term(
        list,
        `Adjusted for ${decision.comparisons} comparisons (Holm)`,
        entry.started ? entry.adjusted_p_value.toPrecision(2) : "\u2014",
        "adjusted-p-value",
      );
    }
  }

  function challengerCard(decision, entry) {
    const card = document.createElement("article");
    card.className = "challenger";
    card.dataset.challenger = entry.challenger;
    const title = document.createElement("h3");
    title.textContent = `${entry.challenger} against ${decision.champion}`;
    const line = document.createElement("p");
    const verdict = document.createElement("strong");
    verdict.className = "ab-verdict";
    if (entry.verdict === "challenger better") verdict.classList.add("better");
    if (entry.verdict === "champion better") verdict.classList.add("worse");
    verdict.textContent = entry.verdict;
    line.append("Verdict: ", verdict);
    if (!entry.trusted) {
      verdict.classList.add("untrusted");
      line.append(" \u2014 not to be trusted: the sample ratio is off (see above)");
    }
    const list = document.createElement("dl");
    const side = (name) =>
      `${name} ${percent(entry.accuracy[name], 1)} of ${entry.votes[name]} votes`;
    term(list, "Accuracy", `${side(decision.champion)}; ${side(entry.challenger)}`);
    term(list, "Difference", points(entry.difference), "difference");
    // Each interval is at α divided by the comparisons (Bonferroni, in step with Holm).
    const level = `${Math.round((1 - decision.alpha / Math.max(1, decision.comparisons)) * 1000) / 10}%`;
    testTerms(list, decision, entry, `Always-valid ${level} interval`, `from ${decision.min_votes} votes each`);
    const planned =
      `${entry.votes_needed_per_variant} to find ${(decision.min_difference * 100).toFixed(1)} ` +
      `points at ${Math.round(decision.power * 100)}% power`;
    term(
      list,
      "Votes still needed",
      entry.verdict === "keep testing"
        ? `${entry.votes_still_needed} per variant (${planned})`
        : `none: decided (${planned})`,
      "votes-needed",
    );
    card.append(title, line, list);
    return card;
  }

  // POST to an admin route with the Promote form's token: the JSON answer, or an Error with
  // the endpoint's message.
  async function postAdmin(path, payload) {
    const response = await fetch(path, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Authorization: `Bearer ${$("admin-token").value}`,
      },
      body: JSON.stringify(payload),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok || !body) {
      throw new Error(body && body.message ? body.message : `the endpoint answered ${response.status}`);
    }
    return body;
  }

  // rollout.js starts and stops rollouts with the same token.
  window.critic = { ...(window.critic || {}), postAdmin };

  const trafficNow = (body) =>
    Object.entries(body.shares)
      .map(([name, value]) => `${name} ${percent(value, 0)}`)
      .join(", ");

  // The paired verdict in the shadow's words: "challenger better" is the shadow's win.
  function shadowVerdict(entry) {
    const named = { "challenger better": "shadow better", "champion better": `${entry.against} better` };
    return named[entry.verdict] ?? entry.verdict;
  }

  // A shadow against the champion, on the same voted reviews (issue 23).
  function shadowCard(decision, entry) {
    const card = document.createElement("article");
    card.className = "challenger shadow-decision";
    card.dataset.shadow = entry.shadow;
    const title = document.createElement("h3");
    title.textContent = `${entry.shadow} (shadow) against ${entry.against}, on the same reviews`;
    const line = document.createElement("p");
    const verdict = document.createElement("strong");
    verdict.className = "ab-verdict";
    if (entry.verdict === "challenger better") verdict.classList.add("better");
    if (entry.verdict === "champion better") verdict.classList.add("worse");
    verdict.textContent = shadowVerdict(entry);
    line.append("Verdict: ", verdict);
    const list = document.createElement("dl");
    term(
      list,
      "Accuracy",
      `${entry.shadow} ${percent(entry.accuracy.shadow, 1)}; ${entry.against} ` +
        `${percent(entry.accuracy.live, 1)} of ${entry.reviews} voted reviews`,
    );
    term(
      list,
      "Where they disagree",
      `${entry.shadow} right ${entry.shadow_won}, ${entry.against} right ${entry.live_won}`,
      "disagreements",
    );
    term(list, "Difference", points(entry.difference), "difference");
    testTerms(list, decision, entry, "Always-valid interval", `from ${entry.min_pairs} disagreements`);
    term(
      list,
      "Voted reviews still needed",
      entry.verdict === "keep testing"
        ? `${entry.reviews_still_needed} (${entry.reviews_needed} in all, paired)`
        : "none: decided",
      "votes-needed",
    );
    const button = document.createElement("button");
    button.type = "button";
    button.className = "promote-shadow";
    button.textContent = `Make ${entry.shadow} a live variant`;
    button.addEventListener("click", () => promoteShadow(entry, button));
    card.append(title, line, list, button);
    return card;
  }

  // A shadow made a live variant (POST /admin/shadows/NAME/promote), with the paired result
  // that argued for it as the reason; the admin token is the Promote form's.
  async function promoteShadow(entry, button) {
    const status = $("promote-status");
    const reason =
      `paired verdict: ${shadowVerdict(entry)}, ${points(entry.difference)} on ${entry.reviews} voted reviews`;
    button.disabled = true;
    status.textContent = `Making ${entry.shadow} a live variant\u2026`;
    try {
      const body = await postAdmin(`/admin/shadows/${encodeURIComponent(entry.shadow)}/promote`, {});
      status.textContent = `${entry.shadow} is a live variant (${reason}). Traffic now: ${trafficNow(body)}.`;
      refresh();
    } catch (error) {
      status.textContent = `Not promoted: ${error.message || "the endpoint could not be reached"}.`;
      button.disabled = false;
    }
  }

  let promoteTouched = false;

  function renderPromoteChoices(decision, variants) {
    const select = $("promote-variant");
    const names = variants.map((variant) => variant.name);
    if ([...select.options].map((option) => option.value).join("\n") !== names.join("\n")) {
      select.replaceChildren(
        ...names.map((name) => {
          const option = document.createElement("option");
          option.value = name;
          option.textContent = name;
          return option;
        }),
      );
    }
    if (promoteTouched || !decision) return;
    // Offer the winner: the challenger a verdict named better, else the champion.
    const winner = decision.challengers.find(
      (entry) => entry.verdict === "challenger better" && entry.trusted,
    );
    select.value = winner ? winner.challenger : decision.champion;
  }

  function renderDecision(decision, variants) {
    $("decision-off").hidden = Boolean(decision);
    renderPromoteChoices(decision, variants);
    if (!decision) {
      $("challengers").replaceChildren();
      return;
    }
    $("champion").textContent = decision.champion ?? "none yet";
    $("champion-rule").textContent = decision.champion_rule;
    $("method").textContent = decision.method;
    $("assumes").textContent = `It assumes: ${decision.assumes}`;
    $("sample-size").textContent = `Votes still needed: ${decision.sample_size}`;
    const ratio = decision.sample_ratio;
    $("sample-ratio").textContent = ratio.method;
    $("srm-warning").hidden = !ratio.mismatch;
    $("srm-reasons").replaceChildren(
      ...ratio.reasons.map((reason) => {
        const item = document.createElement("li");
        item.textContent = reason;
        return item;
      }),
    );
    $("left-out").hidden = !decision.left_out_votes;
    $("left-out").textContent =
      `${decision.left_out_votes} votes on answers a client asked a variant for by name are ` +
      "left out: nothing chose those variants at random.";
    $("challengers").replaceChildren(
      ...decision.challengers.map((entry) => challengerCard(decision, entry)),
      ...decision.shadows.map((entry) => shadowCard(decision, entry)),
    );
    $("paired-method").textContent = decision.paired_method;
  }

  // Everything to the chosen variant, or its share with the rest split evenly among the others.
  function promotedWeights(chosen, share) {
    const others = [...$("promote-variant").options].map((o) => o.value).filter((n) => n !== chosen);
    const weights = { [chosen]: share };
    for (const name of others) weights[name] = others.length ? (1 - share) / others.length : 0;
    return weights;
  }

  async function promote(event) {
    event.preventDefault();
    const chosen = $("promote-variant").value;
    const share = Number($("promote-share").value) / 100;
    const status = $("promote-status");
    const button = $("promote-button");
    button.disabled = true;
    status.textContent = `Promoting ${chosen}\u2026`;
    try {
      const body = await postAdmin("/admin/weights", promotedWeights(chosen, share));
      status.textContent = `Promoted ${chosen}. Traffic now: ${trafficNow(body)}.`;
      refresh();
    } catch (error) {
      status.textContent = `Not promoted: ${error.message || "the endpoint could not be reached"}.`;
    } finally {
      button.disabled = false;
    }
  }

  $("promote").addEventListener("submit", promote);
  $("promote-variant").addEventListener("change", () => {
    promoteTouched = true;
  });
  $("decision-parameters").addEventListener("change", () => refresh());
  $("decision-parameters").addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });

  async function refresh() {
    try {
      const response = await fetch(`/api/ab?${decisionQuery()}`, { headers: { Accept: "application/json" } });
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

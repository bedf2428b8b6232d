// The review page: asks POST /invocations?explain=true like any other client, then shows the
// verdict, the confidence, the rating, which variant answered and the words that drove it.
// Every piece of text from the review or the server goes into the page as a text node
// (textContent / createTextNode), never as HTML: a review holding <script> is shown, not run.
"use strict";

(() => {
  const TIMEOUT_MS = 30000;
  const MIN_HIGHLIGHT = 0.1; // weights are scaled to [-1, 1]; fainter ones stay unmarked
  const SAMPLES = [
    {
      title: "A rave",
      text: "One of the best films I have seen in years. The story is moving, the cast is superb and the score stayed with me for days. I cannot wait to watch it again.",
    },
    {
      title: "A pan",
      text: "What a waste of two hours. The plot is a mess, the acting is wooden and the dialogue is painfully bad. I wanted to walk out long before the dull ending.",
    },
    {
      title: "Negation",
      text: "I expected to hate it, but it was not bad at all: the jokes land, the leads are charming and I was never bored.",
    },
    {
      title: "Mixed",
      text: "Beautiful to look at and the first hour is gripping, but the second half drags and the twist makes no sense. Worth seeing once, I suppose.",
    },
  ];

  const $ = (id) => document.getElementById(id);
  // /?variant=NAME asks that variant every time (as X-Amzn-SageMaker-Target-Variant does);
  // without it the endpoint draws one by traffic weight.
  const TARGET = new URLSearchParams(location.search).get("variant");
  let busy = false;
  let answer = null; // what the feedback buttons report on

  function setBusy(on) {
    busy = on;
    $("submit").disabled = on;
    $("submit").textContent = on ? "Judging\u2026" : "Submit";
    $("review-form").setAttribute("aria-busy", on ? "true" : "false");
    if (on) $("status").textContent = "Asking the model\u2026";
  }

  function showError(message) {
    answer = null;
    $("result").hidden = true;
    $("error-message").textContent = message;
    $("error").hidden = false;
    $("status").textContent = "No verdict: see the message below.";
  }

  // An answer's body as JSON, or null when it is not JSON (a proxy's HTML error page, say).
  async function readJson(response) {
    try {
      return await response.json();
    } catch {
      return null;
    }
  }

  // The server's own words for a refused request when it gave them, else the HTTP reason.
  function errorMessage(response, body) {
    return body && typeof body.message === "string" ? body.message : response.statusText;
  }

  async function judge() {
    if (busy) return;
    const review = $("review").value;
    if (!review.trim()) {
      showError("Write a review first: there is nothing to judge.");
      $("review").focus();
      return;
    }
    $("error").hidden = true;
    setBusy(true);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    const started = performance.now();
    try {
      let response;
      try {
        response = await fetch("/invocations?explain=true", {
          method: "POST",
          headers: {
            "Content-Type": "application/json",
            Accept: "application/json",
            ...(TARGET ? { "X-Amzn-SageMaker-Target-Variant": TARGET } : {}),
          },
          body: JSON.stringify({ instances: [review] }),
          signal: controller.signal,
        });
      } catch (error) {
        showError(
          error.name === "AbortError"
            ? `The endpoint did not answer within ${TIMEOUT_MS / 1000} seconds.`
            : "Could not reach the endpoint. Is the server still running?"
        );
        return;
      }
      const elapsed = performance.now() - started;
      const body = await readJson(response);
      if (!response.ok) {
        const message = errorMessage(response, body) || "no message";
        showError(`The endpoint answered ${response.status}: ${message}`);
        return;
      }
      const prediction = body && Array.isArray(body.predictions) ? body.predictions[0] : null;
      if (!prediction || !["positive", "negative"].includes(prediction.label)) {
        showError("The endpoint's answer could not be read.");
        return;
      }
      const variant =
        body.variant || response.headers.get("x-amzn-invoked-production-variant") || "unknown";
      show(review, prediction, variant, body.model || "unknown", elapsed);
    } finally {
      clearTimeout(timer);
      setBusy(false);
    }
  }

  function show(review, prediction, variant, model, elapsed) {
    const positive = prediction.label === "positive";
    // The calibrated score when the model has one: it is the probability to trust.
    const score = typeof prediction.score === "number" ? prediction.score : prediction.probability;
    const confidence = Math.max(0, Math.min(1, positive ? score : 1 - score));
    const percent = Math.round(confidence * 100);

    $("verdict").textContent = positive ? "POSITIVE" : "NEGATIVE";
    $("verdict").className = "verdict " + (positive ? "pos" : "neg");
    $("confidence").textContent = `${percent}% sure it is ${prediction.label}`;
    const bar = $("confidence-bar");
    bar.setAttribute("aria-valuenow", String(percent));
    bar.setAttribute("aria-valuetext", `${percent}% sure it is ${prediction.label}`);
    const fill = $("confidence-fill");
    fill.style.width = `${percent}%`; // CSSOM, which the page's Content-Security-Policy allows
    fill.className = "bar-fill " + (positive ? "pos" : "neg");
    $("rating").textContent = String(prediction.rating);
    $("variant").textContent = variant;
    $("model").textContent = model;
    $("elapsed").textContent = `${Math.round(elapsed)} ms`;
    // How unlike the model's training reviews this one is: a confident answer to text the
    // model never learned from deserves a word of warning, not silence.
    const domain = prediction.domain;
    const unusual = domain && domain.typical === false;
    $("domain-note").hidden = !unusual;
    $("domain-note").textContent = unusual
      ? `This review is unlike the movie reviews this model learned from (domain score ${domain.score.toFixed(2)}; typical is 1 or less): its verdict is less likely to be right than its confidence says.`
      : "";

    const words = Array.isArray(prediction.words) ? prediction.words : [];
    highlight($("highlighted"), review, words);
    const tokens = prediction.tokens || {};
    $("cut-note").hidden = !tokens.cut;
    $("cut-note").textContent = tokens.cut
      ? `The model read the first ${tokens.count} words; the rest was cut at its maximum length.`
      : "";
    drivers(words);

    answer = {
      review, variant, label: prediction.label, probability: score, rating: prediction.rating,
      answer_id: prediction.id,
    };
    $("feedback-right").disabled = false;
    $("feedback-wrong").disabled = false;
    $("feedback-status").textContent = "";
    $("result").hidden = false;
    $("status").textContent = `Verdict: ${positive ? "POSITIVE" : "NEGATIVE"}, ${percent}% sure, rating ${prediction.rating} of 10.`;
  }

  // --- word highlighting ----------------------------------------------------------------
  // The server returns the tokens it read (lower-cased; "don't" as "do" + "n't"). They are
  // found again in the review, in order, to colour the words where the reader wrote them.

  const WORD_CHAR = /[\p{L}\p{N}]/u;

  function foldCase(text) {
    // Lower-case one UTF-16 unit at a time, keeping any that would change length, so that
    // positions in the folded text are positions in the review.
    let out = "";
    for (const unit of text.split("")) {
      const lower = unit.toLowerCase();
      out += lower.length === 1 ? lower : unit;
    }
    return out.replace(/[\u2019\u2018`\u00b4]/g, "'");
  }

  function alignTokens(review, words) {
    const folded = foldCase(review);
    const spans = [];
    let position = 0;
    for (const { word, weight } of words) {
      if (typeof word !== "string" || !word) continue;
      let at = folded.indexOf(word, position);
      while (at !== -1 && !fits(folded, word, at)) at = folded.indexOf(word, at + 1);
      // A token that cannot be found (say, from an HTML entity) is skipped, not guessed.
      if (at === -1 || at - position > 2000) continue;
      spans.push({ start: at, end: at + word.length, word, weight: Number(weight) || 0 });
      position = at + word.length;
    }
    return spans;
  }

  function fits(folded, word, at) {
    if (!WORD_CHAR.test(word[0])) return true; // "n't", "'s", "!" follow anything
    const before = at > 0 ? folded[at - 1] : " ";
    const after = folded[at + word.length] || " ";
    return !WORD_CHAR.test(before) && (!WORD_CHAR.test(after) || folded.startsWith("n't", at + word.length));
  }

  function highlight(target, review, words) {
    target.replaceChildren();
    let position = 0;
    for (const span of alignTokens(review, words)) {
      if (Math.abs(span.weight) < MIN_HIGHLIGHT) continue;
      target.append(document.createTextNode(review.slice(position, span.start)));
      const mark = document.createElement("mark");
      const strength = Math.min(1, Math.abs(span.weight));
      mark.className = "word " + (span.weight > 0 ? "pos" : "neg");
      mark.dataset.weight = span.weight.toFixed(2);
      mark.style.setProperty("--strength", (0.15 + 0.6 * strength).toFixed(3));
      mark.title = `${span.weight > 0 ? "towards positive" : "towards negative"}, weight ${span.weight.toFixed(2)}`;
      mark.textContent = review.slice(span.start, span.end);
      target.append(mark);
      position = span.end;
    }
    target.append(document.createTextNode(review.slice(position)));
  }

  function drivers(words) {
    const best = new Map(); // strongest weight of each distinct word
    for (const { word, weight } of words) {
      const value = Number(weight) || 0;
      if (!best.has(word) || Math.abs(value) > Math.abs(best.get(word))) best.set(word, value);
    }
    const entries = [...best.entries()];
    fill($("top-positive"), entries.filter(([, w]) => w >= MIN_HIGHLIGHT).sort((a, b) => b[1] - a[1]).slice(0, 5));
    fill($("top-negative"), entries.filter(([, w]) => w <= -MIN_HIGHLIGHT).sort((a, b) => a[1] - b[1]).slice(0, 5));
  }

  function fill(list, entries) {
    list.replaceChildren();
    if (!entries.length) {
      const item = document.createElement("li");
      item.className = "none";
      item.textContent = "none";
      list.append(item);
      return;
    }
    for (const [word, weight] of entries) {
      const item = document.createElement("li");
      item.textContent = `${word} (${weight > 0 ? "+" : ""}${weight.toFixed(2)})`;
      list.append(item);
    }
  }

  // --- feedback -------------------------------------------------------------------------

  async function sendFeedback(verdict) {
    if (!answer) return;
    const buttons = [$("feedback-right"), $("feedback-wrong")];
    buttons.forEach((button) => (button.disabled = true));
    $("feedback-status").textContent = "Saving\u2026";
    try {
      const response = await fetch("/api/feedback", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ ...answer, feedback: verdict }),
      });
      const body = await readJson(response);
      if (!response.ok) {
        const message = errorMessage(response, body);
        throw new Error(`the endpoint answered ${response.status}: ${message}`);
      }
      $("feedback-status").textContent = `Thank you: recorded as ${verdict}.`;
    } catch (error) {
      buttons.forEach((button) => (button.disabled = false));
      $("feedback-status").textContent = `Feedback not saved: ${error.message || "the endpoint could not be reached"}.`;
    }
  }

  // --- wiring ---------------------------------------------------------------------------

  function start() {
    $("review-form").addEventListener("submit", (event) => {
      event.preventDefault();
      judge();
    });
    $("review").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        judge();
      }
    });
    $("feedback-right").addEventListener("click", () => sendFeedback("right"));
    $("feedback-wrong").addEventListener("click", () => sendFeedback("wrong"));
    const list = $("samples");
    for (const sample of SAMPLES) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary sample";
      button.textContent = sample.title;
      button.setAttribute("aria-label", `Try the sample: ${sample.title}`);
      button.addEventListener("click", () => {
        $("review").value = sample.text;
        judge();
      });
      item.append(button);
      list.append(item);
    }
    document.body.dataset.ready = "true";
  }

  start();
})();

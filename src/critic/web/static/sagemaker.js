// The A/B view's "What SageMaker measured" section: in front of a SageMaker endpoint
// (critic web --sagemaker-endpoint), each variant's figures from CloudWatch over the last
// hours -- every request, from every page server and the Lambda -- beside what this server
// saw. A local endpoint has no /api/ab/sagemaker (404): the section stays hidden.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const HOURS = 3;
  const EVERY_MS = 60000; // CloudWatch moves by the minute, and bills by the request

  function text(value, unit) {
    if (value === null || value === undefined) return "–";
    return unit ? `${value.toLocaleString()} ${unit}` : value.toLocaleString();
  }

  function render(figures) {
    $("sagemaker-period").textContent =
      `${figures.source}, the last ${figures.period.hours} hours ` +
      `(${figures.period.start} to ${figures.period.end}), for endpoint ${figures.endpoint}.`;
    const rows = $("sagemaker-rows");
    rows.replaceChildren();
    for (const [name, entry] of Object.entries(figures.variants)) {
      const row = rows.insertRow();
      row.dataset.variant = name;
      const head = document.createElement("th");
      head.scope = "row";
      head.textContent = name;
      row.append(head);
      for (const value of [
        text(entry.invocations),
        text(entry.errors_4xx),
        text(entry.errors_5xx),
        text(entry.latency_ms.mean, "ms"),
        text(entry.latency_ms.p95, "ms"),
      ]) {
        row.insertCell().textContent = value;
      }
    }
  }

  async function refresh() {
    let response;
    try {
      response = await fetch(`/api/ab/sagemaker?hours=${HOURS}`, { headers: { Accept: "application/json" } });
    } catch (error) {
      return; // the main view says when the server cannot be reached
    }
    if (response.status === 404) return; // not in front of SageMaker
    $("sagemaker").hidden = false;
    const body = await response.json().catch(() => null);
    if (!response.ok || !body) {
      $("sagemaker-error").textContent =
        `SageMaker's figures could not be read: ${body && body.message ? body.message : response.status}`;
      $("sagemaker-error").hidden = false;
      return;
    }
    $("sagemaker-error").hidden = true;
    render(body);
  }

  refresh();
  setInterval(refresh, EVERY_MS);
})();

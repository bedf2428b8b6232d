// The API page: Swagger UI over this server's own /openapi.json. Its script and style come
// from this server (/docs/assets/, the fastapi-offline package's copy), and this file starts
// it, so the page's Content-Security-Policy (no inline script, nothing from elsewhere) holds.
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // The validator badge asks a public server to check the schema: never from this page.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});

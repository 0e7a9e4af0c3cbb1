// The console's only script: it refreshes the agents table every 5 seconds. Pages work without
// it (reload to refresh). Served from this origin, as the Content Security Policy requires.
"use strict";

(function () {
  const POLL_MS = 5000;

  function poll(tbody) {
    const url = tbody.getAttribute("data-poll");
    if (!url) {
      return;
    }
    let busy = false;
    setInterval(async function () {
      if (busy || document.hidden) {
        return;
      }
      busy = true;
      try {
        const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
        if (response.redirected) {
          // The session ended: show the sign-in page.
          window.location.assign(response.url);
          return;
        }
        if (response.ok) {
          tbody.innerHTML = await response.text();
        }
      } catch (_) {
        // Offline for a moment: the next tick tries again.
      } finally {
        busy = false;
      }
    }, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(poll);
  });
})();

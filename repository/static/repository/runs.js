// Live status of a verification run on the draft page: poll the run's API resource while it is queued or
// running, and reload the page once it has finished so the verdict and the report link appear.
(function () {
  "use strict";
  var panel = document.getElementById("runs");
  if (!panel || !panel.dataset.runUrl) return;
  var badge = panel.querySelector("[data-run-status]");
  var delay = 2000;

  function poll() {
    fetch(panel.dataset.runUrl, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (run) {
        if (!run) return;
        if (badge) {
          badge.textContent = run.status.charAt(0).toUpperCase() + run.status.slice(1);
          badge.className = "badge run-" + run.status;
        }
        if (run.status === "finished" || run.status === "error") {
          window.location.reload();
          return;
        }
        delay = Math.min(delay * 1.5, 15000);
        window.setTimeout(poll, delay);
      })
      .catch(function () { window.setTimeout(poll, 15000); });
  }
  window.setTimeout(poll, delay);
})();

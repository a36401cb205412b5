// Live pull progress on a run's report page: while the run is queued or running, poll the run's JSON
// (GET /api/runs/<id>, its "pull" field) and show the image's bytes done / total; reload once the run has ended so
// the verdict and the report appear. A static file because the pages' CSP allows no inline script.
(function () {
  "use strict";
  var cell = document.getElementById("pull-progress");
  if (!cell || !cell.dataset.runUrl) return;
  var bar = document.getElementById("pull-bar");
  var delay = 1000;

  function size(bytes) {
    var units = ["bytes", "KB", "MB", "GB", "TB"];
    var value = bytes, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return (unit === 0 ? String(value) : value.toFixed(1)) + "\u00a0" + units[unit];
  }

  function show(pull) {
    if (!pull) return;
    cell.firstChild.nodeValue = size(pull.done_bytes) + " of " + size(pull.total_bytes) + " ";
    if (bar) {
      bar.max = Math.max(pull.total_bytes, 1);
      bar.value = pull.done_bytes;
    }
  }

  function poll() {
    fetch(cell.dataset.runUrl, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (run) {
        if (!run) { window.setTimeout(poll, 5000); return; }
        if (run.status !== "queued" && run.status !== "running") {
          window.location.reload();
          return;
        }
        show(run.pull);
        delay = run.pull && run.pull.done_bytes < run.pull.total_bytes ? 1000 : Math.min(delay * 1.5, 10000);
        window.setTimeout(poll, delay);
      })
      .catch(function () { window.setTimeout(poll, 10000); });
  }
  window.setTimeout(poll, delay);
})();

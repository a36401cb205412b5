// The draft page's upload widget, over the resumable upload API (upload-transfer.js does one file's protocol).
// Several files go at once, each in parts sent in parallel (at most data-part-concurrency in flight in all); a bar
// per file and one for all, with the speed and the time left. Each file can be paused and resumed; an upload cut
// off by a reload, a closed tab or a dropped network resumes when the same file is chosen again (its upload id is
// in localStorage), sending only the parts the server does not hold. So leaving the page costs only the parts in
// flight, and the page does not hold the user back with a "leave this page?" prompt. After the uploads the page's file list is
// re-read from the server, so it shows what was stored. Errors are shown in the API's words.
(function () {
  "use strict";

  var form = document.getElementById("upload");
  if (!form || !window.NbarchiveTransfer) return;
  var T = window.NbarchiveTransfer;
  var recordId = form.getAttribute("data-record");
  var uploadsUrl = form.getAttribute("data-uploads-url");
  var partSize = Number(form.getAttribute("data-part-size"));
  var partConcurrency = Number(form.getAttribute("data-part-concurrency")) || 4;
  var maxFileSize = Number(form.getAttribute("data-max-file-size"));
  var maxNotebookSize = Number(form.getAttribute("data-max-notebook-size"));
  var fileInput = form.querySelector('input[type="file"]');
  var folderInput = form.querySelector('input[name="folder"]');
  var list = form.querySelector("[data-upload-list]");
  var unfinishedList = form.querySelector("[data-upload-unfinished]");
  var summary = form.querySelector("[data-upload-summary]");
  var startButton = form.querySelector("[data-upload-start]");
  var limiter = new T.Limiter(partConcurrency);
  var NETWORK_RETRY_SECONDS = 5;  // a file paused by a dropped connection tries again this often
  var active = [];  // the jobs of the current batch
  // Parts of the page that an upload can change: the files, what submission still needs, the notebook.
  var REFRESHED_IDS = ["file-list", "upload-states", "submission-status", "metadata-summary", "runs"];

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    var field = form.querySelector('input[name="csrfmiddlewaretoken"]');  // the cookie may be HttpOnly
    return field ? field.value : "";
  }

  function formatBytes(bytes) {
    var units = ["bytes", "KB", "MB", "GB", "TB"], value = bytes, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return unit === 0 ? bytes + " bytes" : value.toFixed(1) + " " + units[unit];
  }

  function formatSeconds(seconds) {
    if (seconds < 60) return Math.max(1, Math.round(seconds)) + " s";
    if (seconds < 3600) return Math.round(seconds / 60) + " min";
    return (seconds / 3600).toFixed(1) + " h";
  }

  function targetPath(file) {
    var folder = (folderInput ? folderInput.value : "").trim().replace(/^\/+|\/+$/g, "");
    return folder ? folder + "/" + file.name : file.name;
  }

  function clientSideProblem(file, path) {
    var pathProblem = T.pathProblem(path);
    if (pathProblem) return pathProblem;
    if (file.size === 0) return "The file is empty.";
    var isNotebook = /\.ipynb$/i.test(path);
    var limit = isNotebook ? maxNotebookSize : maxFileSize;
    if (limit && file.size > limit) {
      return "The file is " + formatBytes(file.size) + "; the limit is " + formatBytes(limit) +
        (isNotebook ? " for a notebook." : ".");
    }
    return null;
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function button(label, attribute) {
    var node = element("button", "button small secondary", label);
    node.type = "button";
    node.setAttribute(attribute, "");
    node.hidden = true;
    return node;
  }

  function createView(path, size) {
    var item = element("li", "upload-item");
    window.setTimeout(function () { item.scrollIntoView({ block: "nearest" }); }, 0);  // keep the progress in view
    var head = element("div", "upload-head");
    head.appendChild(element("span", "upload-path", path));
    head.appendChild(element("span", "muted", formatBytes(size)));
    var progress = element("progress");
    progress.max = 100;
    progress.value = 0;
    progress.setAttribute("aria-label", "Upload progress of " + path);
    var status = element("div", "upload-status", "Waiting…");
    var actions = element("div", "upload-actions");
    var pause = button("Pause", "data-upload-pause");
    var resume = button("Resume", "data-upload-resume");
    var cancel = button("Cancel", "data-upload-cancel");
    [pause, resume, cancel].forEach(function (node) { actions.appendChild(node); });
    [head, progress, status, actions].forEach(function (node) { item.appendChild(node); });
    list.appendChild(item);
    return { item: item, progress: progress, status: status, pause: pause, resume: resume, cancel: cancel };
  }

  function showButtons(view, shown) {
    ["pause", "resume", "cancel"].forEach(function (name) { view[name].hidden = shown.indexOf(name) === -1; });
  }

  function finish(view, ok, lines) {
    view.item.classList.remove("paused");
    view.item.classList.add(ok ? "done" : "failed");
    showButtons(view, []);
    view.progress.hidden = !ok;
    if (ok) view.progress.value = 100;
    view.status.textContent = lines[0];
    if (lines.length > 1) {
      var details = element("ul");
      lines.slice(1).forEach(function (line) { details.appendChild(element("li", "", line)); });
      view.status.appendChild(details);
    }
  }

  // --- speed and time left, over the last few seconds, for all files together ----------------------------------
  var samples = [];
  function sentNow() {
    return active.reduce(function (sum, job) { return sum + job.sentThisVisit; }, 0);
  }
  function speed() {
    var now = Date.now(), sent = sentNow();
    samples.push([now, sent]);
    while (samples.length > 2 && now - samples[0][0] > 5000) samples.shift();
    var first = samples[0], seconds = (now - first[0]) / 1000;
    return seconds > 0.5 ? Math.max(0, (sent - first[1]) / seconds) : 0;
  }
  function rateText(rate, left) {
    if (!rate) return "";
    return " · " + formatBytes(rate) + "/s · about " + formatSeconds(left / rate) + " left";
  }
  function updateSummary() {
    var total = 0, done = 0, sending = false;
    active.forEach(function (job) {
      total += job.file.size;
      done += job.sent;
      sending = sending || job.phase === "sending";
    });
    var rate = speed();
    summary.hidden = !active.length;
    summary.querySelector("progress").value = total ? Math.floor(100 * done / total) : 0;
    summary.querySelector("[data-upload-summary-text]").textContent = formatBytes(done) + " of " +
      formatBytes(total) + (sending ? rateText(rate, total - done) : "");
    active.forEach(function (job) {
      if (job.phase !== "sending") return;
      var share = sentNow() ? job.sentThisVisit / sentNow() : 0;
      job.view.progress.value = Math.floor(100 * job.sent / job.file.size);
      job.view.status.textContent = formatBytes(job.sent) + " of " + formatBytes(job.file.size) +
        rateText(rate * share, job.file.size - job.sent);
    });
  }

  // --- one file ----------------------------------------------------------------------------------------------
  function startJob(job) {
    var view = job.view;
    view.item.classList.remove("paused");
    showButtons(view, ["pause", "cancel"]);
    job.promise = job.transfer.run().then(function () {
      job.phase = "done";
      job.sent = job.file.size;
      finish(view, true, ["Uploaded."]);
      return true;
    }, function (error) {
      if (error instanceof T.Paused || (error instanceof T.UploadError && error.retryable)) {
        job.phase = "paused";
        job.pausedByNetwork = !(error instanceof T.Paused);
        view.item.classList.add("paused");
        view.status.textContent = error instanceof T.Paused ? "Paused. The parts already sent are kept."
          : error.lines.join(" ");
        showButtons(view, ["resume", "cancel"]);
        if (job.pausedByNetwork) {  // the "online" event does not come when only the route to the server broke
          window.setTimeout(function () {
            if (job.phase === "paused" && !job.cancelled) view.resume.click();
          }, NETWORK_RETRY_SECONDS * 1000);
        }
        return job.cancelled ? false : new Promise(function (resolve) { job.resumed = resolve; });
      }
      job.phase = "failed";
      finish(view, false, error instanceof T.UploadError ? error.lines : [String(error)]);
      return false;
    });
    return job.promise;
  }

  function createJob(file, path) {
    var view = createView(path, file.size);
    var job = { file: file, path: path, view: view, sent: 0, sentThisVisit: 0, phase: "waiting" };
    var previous = 0;
    job.transfer = new T.Transfer(file, path, {
      uploadsUrl: uploadsUrl, recordId: recordId, partSize: partSize, partConcurrency: partConcurrency,
      limiter: limiter, csrfToken: csrfToken,
      onPhase: function (text) { if (job.phase !== "paused") view.status.textContent = text; },
      onProgress: function (sent) {
        if (job.phase !== "sending") { job.phase = "sending"; previous = sent; }  // held parts are not speed
        job.sentThisVisit += Math.max(0, sent - previous);
        previous = sent;
        job.sent = sent;
        view.progress.value = Math.floor(100 * sent / file.size);
      },
    });
    view.pause.addEventListener("click", function () { job.transfer.pause(); });
    view.resume.addEventListener("click", function () {
      var resumed = job.resumed;
      job.phase = "waiting";
      startJob(job).then(resumed);
    });
    view.cancel.addEventListener("click", function () {
      job.cancelled = true;
      job.transfer.discard().then(function () {
        job.phase = "failed";
        finish(view, false, ["Cancelled; nothing was stored."]);
        if (job.resumed) job.resumed(false);
      });
    });
    var problem = clientSideProblem(file, path);
    if (problem) {
      job.phase = "failed";
      finish(view, false, [problem]);
      job.promise = Promise.resolve(false);
      return job;
    }
    // A job settles once: done, failed or cancelled (a pause waits for a resume).
    job.promise = startJob(job);
    return job;
  }

  function refreshPage() {
    return fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        REFRESHED_IDS.forEach(function (id) {
          var current = document.getElementById(id);
          var replacement = fresh.getElementById(id);
          if (current && replacement) current.replaceWith(document.importNode(replacement, true));
        });
        showUnfinished();
      })
      .catch(function () { window.location.reload(); });
  }

  function busy() {
    return active.some(function (job) { return job.phase !== "done" && job.phase !== "failed"; });
  }

  function uploadAll(files) {
    startButton.disabled = true;
    list.innerHTML = "";
    samples = [];
    active = files.map(function (file) { return createJob(file, targetPath(file)); });
    var ticker = window.setInterval(updateSummary, 500);
    updateSummary();
    return Promise.all(active.map(function (job) { return job.promise; })).then(function (results) {
      window.clearInterval(ticker);
      updateSummary();
      startButton.disabled = false;
      fileInput.value = "";
      if (results.some(Boolean)) return refreshPage();
      showUnfinished();
      return null;
    });
  }

  // Uploads an earlier visit left unfinished: choosing the same file again resumes it.
  function showUnfinished() {
    if (!unfinishedList) return;
    var running = active.filter(function (job) { return busy() && job.transfer; })
      .map(function (job) { return job.transfer.key; });
    var unfinished = T.resumeStore.unfinished(recordId).filter(function (entry) {
      return running.indexOf(entry.key) === -1;
    });
    unfinishedList.innerHTML = "";
    unfinishedList.parentNode.hidden = !unfinished.length;
    unfinished.forEach(function (entry) {
      var item = element("li", "upload-unfinished-item");
      item.appendChild(element("span", "upload-path", entry.path));
      item.appendChild(element("span", "muted", " " + formatBytes(entry.size) + " "));
      var discard = element("button", "button small secondary", "Discard");
      discard.type = "button";
      discard.addEventListener("click", function () {
        var state = T.resumeStore.load(entry.key);
        T.resumeStore.forget(entry.key);
        item.remove();
        if (state) {
          fetch(uploadsUrl + "/" + state.uploadId, { method: "DELETE", credentials: "same-origin",
            headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" } });
        }
        if (!unfinishedList.children.length) unfinishedList.parentNode.hidden = true;
      });
      item.appendChild(discard);
      unfinishedList.appendChild(item);
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy()) return;
    var files = Array.prototype.slice.call(fileInput.files || []);
    if (!files.length) {
      list.innerHTML = "";
      list.appendChild(element("li", "upload-item failed", "Choose one or more files first."));
      fileInput.focus();
      return;
    }
    uploadAll(files);
  });

  window.addEventListener("online", function () {  // the network is back: resume what it paused
    active.forEach(function (job) {
      if (job.phase === "paused" && job.pausedByNetwork && !job.cancelled) job.view.resume.click();
    });
  });

  showUnfinished();
})();

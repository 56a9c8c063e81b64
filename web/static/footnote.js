// Footnote: the little the pages need beyond HTML. Asking and reading work without it.
"use strict";

// Copy buttons are hidden in the HTML (they do nothing without a script) and shown here.
function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  // Fallback for plain-HTTP hosts other than localhost, where the Clipboard API is absent.
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.appendChild(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
}

function announce(button, message) {
  const status = document.querySelector(".copy-status");
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  button.textContent = message;
  if (status) status.textContent = message;
  window.setTimeout(() => { button.textContent = label; }, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", () => {
      copyText(button.dataset.copy).then(
        () => announce(button, "Copied"),
        () => announce(button, "Copy failed: select the text instead"));
    });
  }

  // Enter asks, Shift+Enter adds a line: the box is a textarea so pasted statements fit.
  const box = document.querySelector("form.ask textarea");
  if (box) {
    box.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        box.form.requestSubmit();
      }
    });
  }
});

// Live reindex progress on the sources page: poll while a run is going, reload when it ends.
function renderReindex(box, job) {
  const errors = (job.errors || []).map((e) => `<li><code></code>: <span></span></li>`);
  box.innerHTML = `<p><strong class="state"></strong>: <span class="count"></span> files processed` +
    `<span class="now"></span>.</p><p class="summary"></p><ul class="errors">${errors.join("")}</ul>`;
  box.querySelector(".state").textContent = job.state.charAt(0).toUpperCase() + job.state.slice(1);
  box.querySelector(".count").textContent = `${job.done || 0} of ${job.total || 0}`;
  box.querySelector(".now").textContent = job.current ? `, now ${job.current}` : "";
  box.querySelector(".summary").textContent = job.summary || "";
  box.querySelectorAll(".errors li").forEach((li, i) => {
    li.querySelector("code").textContent = job.errors[i].path;
    li.querySelector("span").textContent = job.errors[i].error;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("reindex");
  if (!box || box.dataset.state !== "running") return;
  const timer = window.setInterval(async () => {
    const resp = await fetch(box.dataset.statusUrl, { credentials: "same-origin" });
    if (!resp.ok) return;
    const job = await resp.json();
    renderReindex(box, job);
    if (job.state !== "running") {
      window.clearInterval(timer);
      window.setTimeout(() => window.location.reload(), 800);
    }
  }, 700);
});

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
    // The box grows with its text; CSS `field-sizing: content` does it where supported.
    if (!(window.CSS && CSS.supports("field-sizing", "content"))) {
      const grow = () => {
        box.style.height = "auto";
        box.style.height = `${box.scrollHeight + box.offsetHeight - box.clientHeight}px`;
      };
      box.addEventListener("input", grow);
      grow();
    }
  }
});

// Live reindex progress on the sources page: poll while a run is going; when it ends, put in
// the box and the listing as the server now renders them (the count is the serving index's).
function renderReindex(box, job) {
  const part = box.querySelector(".job");
  const errors = (job.errors || []).map((e) => `<li><code></code>: <span></span></li>`);
  part.innerHTML = `<p>Last reindex: <strong class="state"></strong>: <span class="count"></span> files processed` +
    `<span class="now"></span>.</p><ul class="errors">${errors.join("")}</ul>`;
  part.querySelector(".state").textContent = job.state.charAt(0).toUpperCase() + job.state.slice(1);
  part.querySelector(".count").textContent = `${job.done || 0} of ${job.total || 0}`;
  part.querySelector(".now").textContent = job.current ? `, now ${job.current}` : "";
  part.querySelectorAll(".errors li").forEach((li, i) => {
    li.querySelector("code").textContent = job.errors[i].path;
    li.querySelector("span").textContent = job.errors[i].error;
  });
}

async function refreshSources() {
  const resp = await fetch(window.location.href, { credentials: "same-origin" });
  if (!resp.ok) throw new Error(`sources page: ${resp.status}`);
  const fresh = new DOMParser().parseFromString(await resp.text(), "text/html");
  for (const id of ["reindex", "listing"]) {
    const now = document.getElementById(id);
    const next = fresh.getElementById(id);
    if (now && next) {
      now.innerHTML = next.innerHTML;
      now.dataset.state = next.dataset.state || "";
    }
  }
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
      refreshSources().catch(() => window.location.reload());
    }
  }, 700);
});

// Remove asks first. The link leads to a confirmation page (which works without a script);
// here the same section, fetched from that page, opens as a dialog over the list.
async function confirmRemove(link) {
  const resp = await fetch(link.href, { credentials: "same-origin" });
  if (!resp.ok) throw new Error(`confirmation: ${resp.status}`);
  const section = new DOMParser().parseFromString(await resp.text(), "text/html").getElementById("confirm-remove");
  if (!section) throw new Error("confirmation: no section");
  const dialog = document.createElement("dialog");
  dialog.className = "confirm";
  dialog.setAttribute("aria-labelledby", "confirm-question");
  dialog.append(document.adoptNode(section));
  dialog.addEventListener("close", () => { dialog.remove(); link.focus(); });
  dialog.querySelector(".cancel").addEventListener("click", (event) => {
    event.preventDefault();
    dialog.close();
  });
  document.body.append(dialog);
  dialog.showModal();
  dialog.querySelector(".cancel").focus();
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a.remove");
  if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  confirmRemove(link).catch(() => { window.location.href = link.href; });
});

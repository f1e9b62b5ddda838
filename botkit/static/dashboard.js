// Live transcript: listen to the thread's server-sent events and put each changed
// message (rendered and escaped by the server) in place, or add it at the end.
"use strict";

(function () {
  const section = document.getElementById("thread");
  const chat = document.getElementById("chat");
  if (!section || !chat || !window.EventSource) return;

  // The newest time the page shows (the thread's, or a message's): changes from then on.
  function newest() {
    let since = section.dataset.since;
    for (const item of chat.querySelectorAll("li[data-version]")) {
      if (item.dataset.version > since) since = item.dataset.version;
    }
    return since;
  }

  function parse(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content;
  }

  // Put a new message in order of id, as the page lists them (updates come in the
  // order messages changed: a reply may be sent again, with a new status, before a
  // later one). Whether it went last.
  function place(item, id) {
    let next = null;
    let li = chat.lastElementChild;
    while (li && Number(li.id.slice(1)) > id) {
      next = li;
      li = li.previousElementSibling;
    }
    chat.insertBefore(item, next);
    return next === null;
  }

  const url = section.dataset.events + "?since=" + encodeURIComponent(newest());
  const source = new EventSource(url);
  const live = document.getElementById("live");

  source.addEventListener("open", function () {
    if (live) live.hidden = false;
  });
  source.addEventListener("error", function () {
    if (live) live.hidden = true;
  });

  source.addEventListener("message", function (event) {
    const update = JSON.parse(event.data);
    const item = parse(update.html).firstElementChild;
    const current = document.getElementById("m" + update.id);
    const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    if (current) {
      current.replaceWith(item);
    } else if (place(item, update.id) && atBottom) {
      item.scrollIntoView({ block: "end" });
    }
  });

  source.addEventListener("thread", function (event) {
    const update = JSON.parse(event.data);
    section.replaceChildren(parse(update.html));
  });
})();

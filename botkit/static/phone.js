// The simulator's phone page: polls the conversation and sends the handset's texts, to
// the number of ours chosen (by default the one the latest MT came from).
// Handset and bot text is untrusted: the DOM is built with textContent only.
"use strict";

(function () {
  const list = document.getElementById("conversation");
  const compose = document.getElementById("compose");
  const input = document.getElementById("text");
  const to = document.getElementById("to");
  // Once the handset picks a number, it keeps it; until then it follows the latest MT.
  let picked = false;
  const errorBox = document.getElementById("error");
  // Present only when the app runs the simulator: the dashboard's page of this thread.
  const transcript = document.getElementById("transcript");
  // Relative to the page, so it works at / and mounted under /simulator/.
  const api = "api/handsets/" + encodeURIComponent(list.dataset.number);
  let shown = "";
  // Why the latest send failed: shown until the next send, whatever the poll finds.
  let notSent = "";

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  // Why a request failed, from its status and body. The guard answers 401 once the
  // dashboard's session has ended (logged out, or expired).
  function failure(status, body) {
    if (status === 401) {
      return "you are logged out. Reload the page to log in again.";
    }
    try {
      return JSON.parse(body).error || "HTTP " + status;
    } catch {
      return "HTTP " + status;
    }
  }

  function showTranscript(url) {
    if (!transcript) {
      return;
    }
    transcript.hidden = !url;
    if (url) {
      transcript.href = url;
    }
  }

  function paragraph(className, text) {
    const p = document.createElement("p");
    p.className = className;
    p.textContent = text;
    return p;
  }

  function item(message) {
    const li = document.createElement("li");
    li.className = "msg " + (message.direction === "mt" ? "mt" : "mo");
    const time = new Date(message.at * 1000).toLocaleTimeString([], {
      hour: "2-digit",
      minute: "2-digit",
    });
    const way = message.direction === "mt" ? "from " : "to ";
    li.append(
      paragraph("text", message.text),
      paragraph("meta", way + message.address + " · " + time + " · " + message.status),
    );
    return li;
  }

  function render(messages, first) {
    const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    if (messages.length === 0) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "No messages yet. Text the bot below.";
      list.replaceChildren(li);
    } else {
      list.replaceChildren(...messages.map(item));
    }
    // Follow new messages, unless the reader scrolled up to older ones.
    if (first || atBottom) {
      window.scrollTo(0, document.body.scrollHeight);
    }
  }

  async function refresh() {
    try {
      const response = await fetch(api, { cache: "no-store" });
      const body = await response.text();
      if (!response.ok) {
        throw new Error(failure(response.status, body));
      }
      if (body !== shown) {
        const first = shown === "";
        shown = body;
        const conversation = JSON.parse(body);
        render(conversation.messages, first);
        showTranscript(conversation.transcript);
        if (!picked) {
          to.value = conversation.to;
        }
      }
      showError(notSent);
    } catch (error) {
      showError(notSent || "Cannot load the conversation: " + error.message);
    }
  }

  async function send(event) {
    event.preventDefault();
    const text = input.value;
    if (!text) {
      return;
    }
    try {
      const response = await fetch(api + "/send", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text: text, to: to.value }),
      });
      if (!response.ok) {
        throw new Error(failure(response.status, await response.text()));
      }
      input.value = "";
      notSent = "";
      showError("");
      await refresh();
    } catch (error) {
      notSent = "Not sent: " + error.message;
      showError(notSent);
    }
  }

  compose.addEventListener("submit", send);
  to.addEventListener("change", function () {
    picked = true;
  });
  input.addEventListener("keydown", function (event) {
    // Enter sends, as on a phone's keyboard; Shift+Enter starts a new line.
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      compose.requestSubmit();
    }
  });
  refresh();
  window.setInterval(refresh, 1000);
})();

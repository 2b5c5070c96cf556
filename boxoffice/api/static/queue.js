// The release queue in front of a show whose sales open later (docs/API.md,
// "Release queue"): the countdown to the opening, joining, the place in the
// queue live from the ticket's events stream, and the pass once admitted.
// While a visitor waits, the page reads neither the seat map nor its stream:
// keeping that rush off the seats is what the queue is for.

import { api, ApiError, followRecord } from "./api.js";
import { formatDuration } from "./text.js";

const $ = (id) => document.getElementById(id);

// How each ending reads. Sold out and closed offer nothing: no seat can come back.
const ENDINGS = {
  sold_out: "Sold out: every seat of this show is sold, so the queue has ended.",
  closed: "This show was closed: its seats can no longer be booked.",
  expired: "Your turn came but the pass expired before you held seats. You may queue again.",
  left: "You left the queue.",
  // A pass is good for one hold (or one waitlist entry): more seats mean queueing again.
  used: "Your pass was used for the seats you held. To pick more seats, queue again.",
};
const CAN_REJOIN = new Set(["expired", "left", "used"]);

// "1:02:03" or "4:05": the time left, to the second.
export function clock(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(h ? 2 : 1, "0");
  return `${h ? `${h}:` : ""}${mm}:${String(s % 60).padStart(2, "0")}`;
}

// Whether a show's seats are behind the queue now: before its opening, or while its queue runs.
export function gated(show) {
  const opensLater = show.sale_opens_at && Date.parse(show.sale_opens_at) > Date.now();
  return Boolean(opensLater || show.queue?.active);
}

export class QueueWatch {
  // page: the ShowPage, for customer(), say(), setStep() and step.
  // onAdmitted(pass): the visitor's turn: the seat map opens.
  // onOpened(): the opening passed with no queue active: the seat map opens for all.
  constructor(page, { onAdmitted, onOpened }) {
    this.page = page;
    this.onAdmitted = onAdmitted;
    this.onOpened = onOpened;
    this.show = null;
    this.ticket = null;
    this.pass = null;
    this.source = null;
    this.timer = null;
    $("queue-join").addEventListener("click", () => this.join());
    $("queue-rejoin").addEventListener("click", () => this.join());
    $("queue-leave").addEventListener("click", () => this.leave());
  }

  // The show's gate, before any ticket: the countdown and the join button.
  showGate(show) {
    this.show = show;
    this.part("before");
    this.page.setStep("queue");
    this.tick();
    this.startTimer();
  }

  async join() {
    const customer = this.page.customer();
    if (!customer) return;
    $("queue-join").disabled = true;
    $("queue-rejoin").disabled = true;
    try {
      const ticket = await api.joinQueue(this.show.id, customer);
      this.page.say("");
      this.follow(ticket);
    } catch (error) {
      this.page.say(error.message, "error");
      if (error instanceof ApiError && error.code === "show_closed") this.end("closed");
    } finally {
      $("queue-join").disabled = false;
      $("queue-rejoin").disabled = false;
    }
  }

  follow(ticket) {
    this.stopStream();
    this.ticket = ticket;
    this.remember();
    this.source = followRecord(api.queueEventsUrl(ticket.ticket_id), () => api.queueTicket(ticket.ticket_id),
      (read) => this.update(read));
    this.update(ticket);
  }

  update(ticket) {
    if (!this.ticket || ticket.ticket_id !== this.ticket.ticket_id) return;
    this.ticket = ticket;
    if (ticket.status === "waiting") {
      this.part("waiting");
      this.page.setStep("queue");
      $("queue-position").textContent = ticket.position ?? "–";
      $("queue-eta").textContent = typeof ticket.eta_s === "number"
        ? `Estimated wait: about ${formatDuration(ticket.eta_s)}.`
        : "The wait is being estimated.";
      this.tick();
      this.startTimer();
    } else if (ticket.status === "admitted" && ticket.pass) {
      this.stopStream();
      this.admit(ticket.pass);
    } else if (ticket.status in ENDINGS) {
      this.stopStream();
      this.end(ticket.status);
    }
  }

  admit(pass) {
    this.pass = pass;
    // ttl_s is counted from now, so a visitor's wrong clock cannot cut the time short.
    this.passEndsAt = typeof pass.ttl_s === "number" ? Date.now() + pass.ttl_s * 1000 : Date.parse(pass.expires_at);
    this.passWasUsed = false;
    this.remember();
    this.part(null);
    $("pass-banner").hidden = false;
    this.startTimer();
    this.tick();
    this.onAdmitted(pass);
  }

  // The pass's token while it is valid, for the X-Queue-Pass header of holds and joins.
  passToken() {
    return this.pass && this.passEndsAt > Date.now() ? this.pass.token : null;
  }

  // The service answered 403 pass_required: back to the queue, the pass no longer counts.
  passRefused(error) {
    this.pass = null;
    $("pass-banner").hidden = true;
    this.page.say(error.message, "error");
    if (this.ticket) this.end(this.passWasUsed ? "used" : "expired");
    else this.showGate(this.page.show);
  }

  // A hold was made with the pass: the pass has done its job.
  passUsed() {
    if (this.pass) this.passWasUsed = true;
    this.pass = null;
    $("pass-banner").hidden = true;
    this.stopTimer();
  }

  end(status) {
    this.stopTimer();
    this.pass = null;
    this.ticket = null;
    this.forget();
    $("pass-banner").hidden = true;
    this.page.closeSeats();
    // No turn is coming after a sell-out or a close: the seat map will not open.
    $("plan-closed").hidden = !CAN_REJOIN.has(status);
    $("queue-ended-text").textContent = ENDINGS[status];
    $("queue-ended").dataset.status = status;
    $("queue-rejoin").hidden = !CAN_REJOIN.has(status);
    this.part("ended");
    this.page.setStep("queue");
  }

  async leave() {
    const ticket = this.ticket;
    if (!ticket) return;
    try {
      await api.leaveQueue(ticket.ticket_id);
    } catch (error) {
      // Already gone is as good as left.
      if (!(error instanceof ApiError && error.status === 404)) return this.page.say(error.message, "error");
    }
    this.stopStream();
    this.end("left");
  }

  // After a reload: the ticket kept for this show in this tab, if it still counts.
  async resume(show) {
    this.show = show;
    const saved = JSON.parse(sessionStorage.getItem(this.storageKey()) || "null");
    if (!saved?.ticket_id) return false;
    try {
      const ticket = await api.queueTicket(saved.ticket_id);
      if (ticket.status === "waiting") {
        this.follow(ticket);
        return true;
      }
      if (ticket.status === "admitted" && ticket.pass && (ticket.pass.ttl_s ?? 1) > 0) {
        this.ticket = ticket;
        this.admit(ticket.pass);
        return true;
      }
    } catch {
      // Gone or unreachable: start afresh.
    }
    this.forget();
    return false;
  }

  // One timer for both clocks: the opening's countdown and the pass's time left.
  tick() {
    if (this.pass) {
      const left = (this.passEndsAt - Date.now()) / 1000;
      $("pass-left").textContent = clock(left);
      if (left <= 0 && this.page.step === "select") this.end("expired");
      return;
    }
    const opensAt = this.show?.sale_opens_at ? Date.parse(this.show.sale_opens_at) : 0;
    const left = (opensAt - Date.now()) / 1000;
    const before = left > 0;
    $("queue-opens").hidden = !before;
    $("queue-open-now").hidden = before;
    if (before) $("queue-countdown").textContent = clock(left);
    // The opening passed with nobody queued here: read the show again, its seats may be open to all.
    if (!before && opensAt && !this.ticket && !this.reread) {
      this.reread = true;
      api.show(this.show.id).then((show) => {
        this.show = show;
        if (!gated(show) && this.page.step === "queue") {
          this.stopTimer();
          this.onOpened(show);
        }
      }).catch(() => {});
    }
  }

  // Which part of the queue step shows: before joining, waiting, ended (null: none).
  part(name) {
    for (const part of ["before", "waiting", "ended"]) $(`queue-${part}`).hidden = part !== name;
  }

  startTimer() {
    if (!this.timer) this.timer = setInterval(() => this.tick(), 250);
  }

  stopTimer() {
    clearInterval(this.timer);
    this.timer = null;
  }

  stopStream() {
    this.source?.close();
    this.source = null;
  }

  stop() {
    this.stopStream();
    this.stopTimer();
    this.ticket = null;
    this.pass = null;
    this.reread = false;
    $("pass-banner").hidden = true;
  }

  remember() {
    sessionStorage.setItem(this.storageKey(), JSON.stringify({ ticket_id: this.ticket?.ticket_id }));
  }

  forget() {
    sessionStorage.removeItem(this.storageKey());
  }

  storageKey() {
    return `boxoffice.queue.${this.show?.id}`;
  }
}

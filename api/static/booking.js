// One show's page: the live seat plan, the selection, the hold with its
// countdown, payment, and the waitlist when the wanted seats are taken.

import { api, ApiError, NetworkError, formatMoney, randomKey } from "./api.js";
import { SeatMap } from "./seatmap.js";

// The service refuses more than this in one hold (shared/API.md).
export const MAX_SEATS = 10;
const CUSTOMER_KEY = "boxoffice.customer";
const CONFIRM_RETRIES = 3;

const $ = (id) => document.getElementById(id);

export class ShowPage {
  constructor() {
    this.map = new SeatMap($("plan"), {
      onToggle: (id) => this.toggle(id),
      onFocusSeat: (id) => ($("seat-info").textContent = this.map.describe(id)),
    });
    this.showId = null;
    this.show = null;
    this.step = "select";
    this.selected = new Set();
    this.pending = new Set(); // seats in a hold request still under way
    this.hold = null;
    this.expiresAt = 0;
    this.entry = null;
    this.offerCount = 0;
    this.seatEvents = null;
    this.waitEvents = null;
    this.timer = null;

    $("customer").value = localStorage.getItem(CUSTOMER_KEY) || "";
    $("hold-button").addEventListener("click", () => this.holdSelection());
    $("soldout-join").addEventListener("click", () =>
      this.joinWaitlist(Number($("wait-count").value)),
    );
    $("offer-join").addEventListener("click", () => this.joinWaitlist(this.offerCount));
    $("offer-skip").addEventListener("click", () => this.setStep("select"));
    $("wait-leave").addEventListener("click", () => this.leaveWaitlist());
    $("pay-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.pay();
    });
    $("release-button").addEventListener("click", () => this.release());
    $("book-more").addEventListener("click", () => this.setStep("select"));
  }

  async open(showId) {
    this.close();
    this.showId = showId;
    this.selected.clear();
    this.map.setSelected([]);
    this.map.setMine([]);
    this.say("");
    this.setStep("select");
    $("plan").replaceChildren();
    delete $("plan").dataset.live;

    this.show = await api.show(showId);
    this.map.setPrices(this.show.prices);
    this.renderShow();
    this.listenToSeats();
    await this.resume();
  }

  // Leaving the show: stop the streams and timer (an active hold stays in
  // sessionStorage and is picked up again on return).
  close() {
    this.seatEvents?.close();
    this.waitEvents?.close();
    clearInterval(this.timer);
    this.seatEvents = this.waitEvents = this.timer = null;
  }

  renderShow() {
    const show = this.show;
    $("show-title").textContent = show.movie?.title ?? "Choose your seats";
    const when = new Date(show.starts_at).toLocaleString(undefined, {
      weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
    });
    $("show-meta").textContent = [when, show.cinema?.name, show.hall?.name].filter(Boolean).join(" · ");
    this.renderPrices();
    if (show.status === "closed") {
      this.say("This show has started or was closed: its seats can no longer be booked.", "error");
    }
  }

  renderPrices() {
    const rows = this.map.rowsByCategory();
    $("price-list").replaceChildren(...this.show.prices.map((p) => {
      const where = rows.get(p.category);
      const name = where ? `${p.category} (${where})` : p.category;
      return listItem(`${name}: ${formatMoney(p.amount, p.currency)}`);
    }));
  }

  // The seat map stays live through the events stream, never by polling.
  listenToSeats() {
    const source = new EventSource(api.seatEventsUrl(this.showId));
    this.seatEvents = source;
    source.onmessage = (event) => {
      const data = JSON.parse(event.data);
      if ("show_id" in data) this.loadMap(data.seats);
      else this.map.applyDelta(data.seats ?? []);
      if (data.counts) this.renderCounts(data.counts);
      this.dropTakenSeats();
      $("plan").dataset.live = "true";
    };
    source.onerror = () => {
      $("plan").dataset.live = source.readyState === EventSource.CLOSED ? "closed" : "reconnecting";
      if (source.readyState === EventSource.CLOSED) {
        this.say("Live seat updates stopped. Reload the page to see the current plan.", "error");
      }
    };
  }

  loadMap(seats) {
    // A reconnect redraws the plan: keep the keyboard focus where it was.
    const focused = document.activeElement?.dataset?.seat;
    this.map.load(seats);
    this.renderPrices();
    if (focused) this.map.buttons.get(focused)?.focus();
  }

  renderCounts(counts) {
    this.counts = counts;
    $("counts").textContent =
      `${counts.available} free · ${counts.held} held · ${counts.booked} booked`;
    this.renderSelection();
  }

  // Seats picked here but taken by someone else since: let go of them, and say so.
  dropTakenSeats() {
    const lost = [...this.selected].filter(
      (id) => !this.pending.has(id) && this.map.seats.get(id)?.status !== "available",
    );
    if (lost.length === 0) return;
    for (const id of lost) this.selected.delete(id);
    this.map.setSelected(this.selected);
    this.renderSelection();
    this.say(`${this.seatNames(lost)} ${lost.length === 1 ? "was" : "were"} just taken by someone else.`);
  }

  toggle(id) {
    // After a booking, or instead of the waitlist, a click starts a new pick.
    if (this.step === "done" || this.step === "offer") this.setStep("select");
    if (this.step === "waiting") {
      return this.say("You are on the waitlist: leave it first to pick seats yourself.");
    }
    if (this.step !== "select") {
      if (!this.map.mine.has(id)) this.say("Pay for or release the seats you hold before picking others.");
      return;
    }
    const status = this.map.seats.get(id)?.status;
    if (this.selected.has(id)) {
      this.selected.delete(id);
    } else if (status !== "available") {
      this.say(`${this.seatNames([id])} is already taken.`);
      return;
    } else if (this.selected.size >= MAX_SEATS) {
      this.say(`You can pick at most ${MAX_SEATS} seats at once. Unpick one to choose another.`, "error");
      return;
    } else {
      this.selected.add(id);
    }
    this.say("");
    this.map.setSelected(this.selected);
    this.renderSelection();
  }

  renderSelection() {
    const ids = this.sorted(this.selected);
    $("selection-list").replaceChildren(...ids.map((id) => this.seatItem(id)));
    $("selection-empty").hidden = ids.length > 0;
    $("selection-total").textContent = ids.length ? `Total ${this.total(ids)}` : "";
    $("hold-button").disabled = ids.length === 0 || this.pending.size > 0 || this.show?.status === "closed";
    $("hold-button").textContent = ids.length
      ? `Hold ${ids.length} seat${ids.length === 1 ? "" : "s"}`
      : "Hold seats";
    const soldOut = this.counts?.available === 0 && ids.length === 0;
    $("soldout").hidden = !soldOut || this.show?.status === "closed";
  }

  customer() {
    const input = $("customer");
    if (!input.value || !input.checkValidity()) {
      this.say("Please enter your email address: your tickets are sent there.", "error");
      input.focus();
      return null;
    }
    localStorage.setItem(CUSTOMER_KEY, input.value);
    return input.value;
  }

  async holdSelection() {
    const customer = this.customer();
    if (!customer) return;
    const seats = this.sorted(this.selected);
    this.pending = new Set(seats);
    this.renderSelection();
    this.say("Holding your seats…");
    try {
      this.startPayment(await api.hold(this.showId, seats, customer));
      this.say("");
    } catch (error) {
      this.pending.clear();
      if (error instanceof ApiError && error.code === "seats_unavailable") {
        this.seatsTaken(seats, error.body);
      } else {
        this.say(error.message, "error");
      }
    } finally {
      this.pending.clear();
      this.renderSelection();
    }
  }

  seatsTaken(wanted, body) {
    const taken = body.unavailable ?? [];
    for (const id of taken) this.selected.delete(id);
    this.map.setSelected(this.selected);
    const names = this.seatNames(taken);
    if (body.waitlist?.possible) {
      this.offerCount = wanted.length;
      const queue = body.waitlist.length;
      $("offer-text").textContent =
        `${names} ${taken.length === 1 ? "was" : "were"} taken a moment ago. ` +
        `Seats held by others come back when their holds end. ` +
        `Join the waitlist and you will be offered ${wanted.length} seat${wanted.length === 1 ? "" : "s"} ` +
        `as they come free${queue ? ` (${queue} ahead of you)` : ""}.`;
      $("offer-join").textContent = `Join the waitlist for ${wanted.length} seat${wanted.length === 1 ? "" : "s"}`;
      this.say("");
      this.setStep("offer");
      $("offer-join").focus();
    } else {
      this.say(`${names} ${taken.length === 1 ? "is" : "are"} no longer free. Please pick other seats.`, "error");
    }
  }

  // ---- holding and paying ----

  startPayment(hold) {
    this.hold = hold;
    // ttl_s is measured by the service's clock; counting it from now spares us
    // a skewed local clock. expires_at is the fallback.
    this.expiresAt = typeof hold.ttl_s === "number"
      ? Date.now() + hold.ttl_s * 1000
      : Date.parse(hold.expires_at);
    sessionStorage.setItem(this.storageKey(), JSON.stringify({ hold_id: hold.hold_id }));
    this.selected.clear();
    this.map.setSelected([]);
    this.map.setMine(hold.seats);
    $("held-list").replaceChildren(...this.sorted(hold.seats).map((id) => this.seatItem(id)));
    const total = this.total(hold.seats);
    $("held-total").textContent = `Total ${total}`;
    $("pay-button").textContent = `Pay ${total}`;
    $("pay-button").disabled = false;
    this.setStep("pay");
    this.warnedLastMinute = false;
    clearInterval(this.timer);
    this.timer = setInterval(() => this.tick(), 250);
    this.tick();
  }

  tick() {
    const left = Math.max(0, Math.ceil((this.expiresAt - Date.now()) / 1000));
    $("countdown").textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    if (left <= 60 && left > 0 && !this.warnedLastMinute) {
      this.warnedLastMinute = true;
      this.say("Less than a minute left to pay for your seats.");
    }
    // A payment under way decides for itself; otherwise the hold is over.
    if (left === 0 && this.step === "pay") this.holdExpired();
  }

  holdExpired() {
    this.endHold();
    this.say("Your hold expired and the seats were released. Pick seats again to start over.", "error");
  }

  endHold() {
    clearInterval(this.timer);
    this.timer = null;
    this.hold = null;
    sessionStorage.removeItem(this.storageKey());
    this.map.setMine([]);
    this.setStep("select");
    this.renderSelection();
  }

  async pay() {
    const token = $("card").value;
    // A fresh key per attempt; the same key again only when the answer was lost,
    // so a retry can never charge twice.
    const key = randomKey();
    this.setStep("paying");
    $("pay-button").disabled = true;
    $("pay-button").textContent = "Paying…";
    this.say("Paying…");
    let booking;
    for (let attempt = 0; ; attempt++) {
      try {
        booking = await api.confirm(this.hold.hold_id, token, key);
        break;
      } catch (error) {
        if (error instanceof NetworkError && attempt < CONFIRM_RETRIES) {
          await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
          continue;
        }
        return this.payFailed(error);
      }
    }
    this.booked(booking);
  }

  payFailed(error) {
    const code = error instanceof ApiError ? error.code : "network";
    if (code === "hold_expired" || (code !== "payment_declined" && Date.now() >= this.expiresAt)) {
      return this.holdExpired();
    }
    if (code === "hold_not_active") {
      this.endHold();
      return this.say(error.message, "error");
    }
    this.setStep("pay");
    $("pay-button").disabled = false;
    $("pay-button").textContent = `Pay ${this.total(this.hold.seats)}`;
    if (code === "payment_declined") {
      this.say("Your card was declined and nothing was charged. " +
        "Try another card while your seats are still held.", "error");
    } else {
      this.say(`${error.message} Nothing was booked; you can try again while your seats are held.`, "error");
    }
  }

  booked(booking) {
    const seats = booking.seats ?? this.hold.seats;
    this.endHold();
    $("booking-id").textContent = booking.booking_id;
    $("booked-list").replaceChildren(...this.sorted(seats).map((id) => this.seatItem(id)));
    $("booked-total").textContent = booking.amount !== undefined
      ? `Paid ${formatMoney(booking.amount, booking.currency)}`
      : "";
    this.say("");
    this.setStep("done");
    $("booking-id").focus();
  }

  async release() {
    try {
      await api.release(this.hold.hold_id);
      this.endHold();
      this.say("Your seats were released.");
    } catch (error) {
      if (error instanceof ApiError && error.code === "hold_not_active") {
        this.endHold();
        this.say("That hold had already ended.");
      } else {
        this.say(error.message, "error");
      }
    }
  }

  // ---- waitlist ----

  async joinWaitlist(count) {
    const customer = this.customer();
    if (!customer) return;
    if (!(count >= 1 && count <= MAX_SEATS)) {
      return this.say(`Ask for between 1 and ${MAX_SEATS} seats.`, "error");
    }
    try {
      const entry = await api.joinWaitlist(this.showId, count, customer);
      this.say("");
      this.followEntry(entry);
    } catch (error) {
      this.setStep("select");
      this.say(error.message, "error");
    }
  }

  followEntry(entry) {
    this.entry = entry;
    sessionStorage.setItem(this.storageKey(), JSON.stringify({ entry_id: entry.entry_id }));
    this.selected.clear();
    this.map.setSelected([]);
    this.setStep("waiting");
    this.renderEntry(entry);
    this.waitEvents?.close();
    const source = new EventSource(api.waitlistEventsUrl(entry.entry_id));
    this.waitEvents = source;
    source.onmessage = (event) => this.renderEntry(JSON.parse(event.data));
    // The stream speaks on change only: read the entry once when connected so
    // a grant that came before the stream opened is not missed.
    source.onopen = async () => {
      try {
        this.renderEntry(await api.waitlistEntry(entry.entry_id));
      } catch {
        // The stream will still tell us.
      }
    };
  }

  renderEntry(entry) {
    if (this.step !== "waiting" || entry.entry_id !== this.entry?.entry_id) return;
    this.entry = entry;
    $("wait-position").textContent = entry.position ?? "–";
    $("wait-eta").textContent = typeof entry.eta_s === "number"
      ? `Estimated wait: about ${formatDuration(entry.eta_s)}.`
      : "";
    const endings = {
      impossible: "Not enough seats can come free for this show any more, sorry.",
      cancelled: "You left the waitlist.",
      expired: "Your place on the waitlist expired.",
    };
    if (entry.status === "granted") {
      this.stopWaiting();
      this.startPayment(entry.hold);
      this.say(`Good news: ${this.seatNames(entry.hold.seats)} ${entry.hold.seats.length === 1 ? "is" : "are"} ` +
        "held for you. Pay before the time runs out.");
      $("pay-button").focus();
    } else if (entry.status in endings) {
      this.stopWaiting();
      this.setStep("select");
      this.say(endings[entry.status], entry.status === "cancelled" ? "info" : "error");
    }
  }

  stopWaiting() {
    this.waitEvents?.close();
    this.waitEvents = null;
    sessionStorage.removeItem(this.storageKey());
  }

  async leaveWaitlist() {
    try {
      await api.leaveWaitlist(this.entry.entry_id);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) return this.say(error.message, "error");
    }
    this.stopWaiting();
    this.setStep("select");
    this.say("You left the waitlist.");
  }

  // ---- coming back to a show after a reload ----

  async resume() {
    const saved = JSON.parse(sessionStorage.getItem(this.storageKey()) || "null");
    if (!saved) return;
    try {
      if (saved.hold_id) {
        const hold = await api.getHold(saved.hold_id);
        if (hold.status === "active") return this.startPayment(hold);
      } else if (saved.entry_id) {
        const entry = await api.waitlistEntry(saved.entry_id);
        if (entry.status === "waiting" || entry.status === "granted") {
          this.followEntry({ ...entry, status: "waiting" });
          return this.renderEntry(entry);
        }
      }
    } catch {
      // Gone or unreachable: start afresh.
    }
    sessionStorage.removeItem(this.storageKey());
  }

  // ---- small helpers ----

  setStep(step) {
    this.step = step;
    const visible = step === "paying" ? "pay" : step;
    for (const name of ["select", "offer", "waiting", "pay", "done"]) {
      $(`step-${name}`).hidden = name !== visible;
    }
    $("release-button").disabled = step === "paying";
  }

  say(text, tone = "info") {
    const message = $("message");
    message.textContent = text;
    message.dataset.tone = tone;
    message.hidden = !text;
  }

  storageKey() {
    return `boxoffice.show.${this.showId}`;
  }

  sorted(ids) {
    const seat = (id) => this.map.seats.get(id) ?? { y: 0, x: 0 };
    return [...ids].sort((a, b) => seat(a).y - seat(b).y || seat(a).x - seat(b).x);
  }

  seatNames(ids) {
    const names = this.sorted(ids).map((id) => {
      const seat = this.map.seats.get(id);
      return seat ? `row ${seat.row} seat ${seat.number}` : id;
    });
    const text = names.length > 1
      ? `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`
      : names[0] ?? "";
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  seatItem(id) {
    const seat = this.map.seats.get(id);
    const price = this.map.priceOf(id);
    const name = seat ? `Row ${seat.row} seat ${seat.number} (${seat.category})` : id;
    return listItem(price ? `${name} · ${formatMoney(price.amount, price.currency)}` : name);
  }

  total(ids) {
    const prices = [...ids].map((id) => this.map.priceOf(id)).filter(Boolean);
    if (prices.length === 0) return "";
    const sum = prices.reduce((acc, p) => acc + p.amount, 0);
    return formatMoney(sum, prices[0].currency);
  }
}

function listItem(text) {
  const li = document.createElement("li");
  li.textContent = text;
  return li;
}

function formatDuration(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  return `${Math.round(seconds / 60)} min`;
}

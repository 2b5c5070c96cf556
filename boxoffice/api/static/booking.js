// One show's page: the live seat plan and the selection, then the steps of
// the booking panel (pick → hold and pay, or wait on the waitlist → booked).

import { api, ApiError } from "./api.js";
import { Checkout } from "./checkout.js";
import { gated, QueueWatch } from "./queue.js";
import { SeatMap } from "./seatmap.js";
import { formatMoney, formatTime, joinNames, listItem, plural, sentence } from "./text.js";
import { WaitlistWatch } from "./waitlist.js";

// The service refuses more than this in one hold (docs/API.md).
export const MAX_SEATS = 10;
const CUSTOMER_KEY = "boxoffice.customer";
const STEPS = ["queue", "select", "offer", "waiting", "pay", "done"];

const $ = (id) => document.getElementById(id);

// The service wants the queue first: a pass this tab lacks, or sales not open yet
// (the visitor's clock may be off).
function queueWanted(error) {
  return error instanceof ApiError && (error.code === "pass_required" || error.code === "sale_not_open");
}

export class ShowPage {
  constructor() {
    this.map = new SeatMap($("plan"), {
      onToggle: (id) => this.toggle(id),
      // Spells out the focused seat for sighted keyboard and touch users too.
      onFocusSeat: (id) => ($("seat-info").textContent = id ? this.map.describe(id) : ""),
    });
    this.showId = null;
    this.show = null;
    this.step = "select";
    this.selected = new Set();
    this.pending = new Set(); // seats in a hold request still under way
    this.picking = false; // a best-available request under way
    this.offerCount = 0;
    this.seatEvents = null;
    this.checkout = new Checkout(this);
    this.waitlist = new WaitlistWatch({
      onGranted: (hold) => {
        this.startPayment(hold);
        this.say(`Good news: ${this.seatNames(hold.seats)} ${hold.seats.length === 1 ? "is" : "are"} ` +
          "held for you. Pay before the time runs out.");
        $("pay-button").focus();
      },
      onEnded: (message, status) => {
        this.forget();
        this.setStep("select");
        this.say(message, status === "cancelled" ? "info" : "error");
      },
    });

    this.queue = new QueueWatch(this, {
      onAdmitted: () => {
        this.say("");
        this.openSeats();
      },
      onOpened: (show) => {
        this.show = show;
        this.openSeats();
      },
    });

    $("customer").value = localStorage.getItem(CUSTOMER_KEY) || "";
    $("hold-button").addEventListener("click", () => this.holdSelection());
    $("best-button").addEventListener("click", () => this.holdBest());
    $("soldout-join").addEventListener("click", () =>
      this.joinWaitlist(Number($("wait-count").value)),
    );
    $("offer-join").addEventListener("click", () => this.joinWaitlist(this.offerCount));
    $("offer-skip").addEventListener("click", () => this.setStep("select"));
    $("wait-leave").addEventListener("click", () => this.leaveWaitlist());
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
    if (gated(this.show) && this.show.status !== "closed") {
      // The queue comes first: the seat map opens with a pass (or a hold kept from before a reload).
      if (await this.resumeHold()) return this.openSeats();
      if (await this.queue.resume(this.show)) return;
      this.closeSeats();
      return this.queue.showGate(this.show);
    }
    this.openSeats();
    await this.resume();
  }

  // The seat map and its stream, read only by those let in.
  openSeats() {
    $("plan-closed").hidden = true;
    $("hall-scroll").hidden = false;
    $("legend").hidden = false;
    if (!this.seatEvents) this.listenToSeats();
    if (this.step === "queue") this.setStep("select");
    this.renderSelection();
  }

  closeSeats() {
    this.seatEvents?.close();
    this.seatEvents = null;
    $("hall-scroll").hidden = true;
    $("legend").hidden = true;
    $("plan-closed").hidden = false;
    $("counts").textContent = "";
  }

  // Leaving the show: stop the streams and the countdown (an active hold or
  // waitlist entry stays in sessionStorage and is picked up again on return).
  close() {
    this.seatEvents?.close();
    this.seatEvents = null;
    this.waitlist.stop();
    this.checkout.stop();
    this.queue.stop();
  }

  renderShow() {
    const show = this.show;
    $("show-title").textContent = show.movie?.title ?? "Choose your seats";
    $("show-meta").textContent = [formatTime(show.starts_at), show.cinema?.name, show.hall?.name]
      .filter(Boolean)
      .join(" · ");
    this.renderPrices();
    const any = new Option("Any", "");
    $("best-category").replaceChildren(any, ...show.prices.map((p) => new Option(p.category, p.category)));
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
    $("selection-list").replaceChildren(...this.seatItems(ids));
    $("selection-empty").hidden = ids.length > 0;
    $("selection-total").textContent = ids.length ? `Total ${this.total(ids)}` : "";
    const busy = this.pending.size > 0 || this.picking;
    // Nothing free and nothing held: no seat can come back, so no waitlist is offered.
    const final = this.counts?.available === 0 && this.counts?.held === 0;
    const shut = this.show?.status === "closed" || final;
    $("hold-button").disabled = ids.length === 0 || busy || shut;
    $("hold-button").textContent = ids.length ? `Hold ${plural(ids.length, "seat")}` : "Hold seats";
    $("best-button").disabled = busy || shut;
    $("best").hidden = final;
    const soldOut = this.counts?.available === 0 && ids.length === 0;
    $("soldout").hidden = !soldOut || shut;
    $("soldout-final").hidden = !final || this.show?.status === "closed";
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
      this.startPayment(await api.hold(this.showId, seats, customer, this.queue.passToken()));
      this.say("");
    } catch (error) {
      this.pending.clear();
      if (error instanceof ApiError && error.code === "seats_unavailable") {
        this.seatsTaken(seats, error.body);
      } else if (queueWanted(error)) {
        this.passRefused(error);
      } else {
        this.say(error.message, "error");
      }
    } finally {
      this.pending.clear();
      this.renderSelection();
    }
  }

  // Best available: the service picks and holds the seats; the plan shows them as yours.
  async holdBest() {
    const customer = this.customer();
    if (!customer) return;
    const count = Number($("best-count").value);
    if (!Number.isInteger(count) || count < 1 || count > MAX_SEATS) {
      this.say(`Choose 1 to ${MAX_SEATS} seats.`, "error");
      $("best-count").focus();
      return;
    }
    const category = $("best-category").value;
    this.picking = true;
    this.renderSelection();
    this.say("Finding the best seats…");
    try {
      const hold = await api.holdBest(this.showId, count, category, customer, this.queue.passToken());
      this.startPayment(hold);
      this.say(`We picked ${this.seatNames(hold.seats)} for you: they are marked on the plan.`);
    } catch (error) {
      if (error instanceof ApiError && error.code === "seats_unavailable") {
        const kind = category ? `${category} ` : "";
        const wanted = count === 1 ? `No ${kind}seat is` : `No ${count} ${kind}seats side by side are`;
        this.say(`${wanted} free right now. Try fewer seats, another category, or pick seats on the plan.`,
          "error");
      } else if (queueWanted(error)) {
        this.passRefused(error);
      } else {
        this.say(error.message, "error");
      }
    } finally {
      this.picking = false;
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
        `Join the waitlist and you will be offered ${plural(wanted.length, "seat")} ` +
        `as they come free${queue ? ` (${queue} ahead of you)` : ""}.`;
      $("offer-join").textContent = `Join the waitlist for ${plural(wanted.length, "seat")}`;
      this.say("");
      this.setStep("offer");
      $("offer-join").focus();
    } else {
      this.say(`${names} ${taken.length === 1 ? "is" : "are"} no longer free. Please pick other seats.`, "error");
    }
  }

  // ---- holding, paying (checkout.js) and the outcome ----

  startPayment(hold) {
    this.queue.passUsed();
    this.remember({ hold_id: hold.hold_id });
    this.selected.clear();
    this.map.setSelected([]);
    this.map.setMine(hold.seats);
    this.setStep("pay");
    this.checkout.start(hold);
  }

  // The hold ended unpaid (expired, released, or gone): back to picking.
  holdEnded(message, tone) {
    this.forget();
    this.map.setMine([]);
    this.setStep("select");
    this.renderSelection();
    this.say(message, tone);
  }

  booked(booking) {
    this.forget();
    this.map.setMine([]);
    this.renderSelection();
    $("booking-id").textContent = booking.booking_id;
    $("booking-link").href = `#/booking/${encodeURIComponent(booking.booking_id)}`;
    $("booked-list").replaceChildren(...this.seatItems(booking.seats));
    $("booked-total").textContent = booking.amount !== undefined
      ? `Paid ${formatMoney(booking.amount, booking.currency)}`
      : "";
    this.say("");
    this.setStep("done");
    $("booking-id").focus();
  }

  // ---- waitlist ----

  async joinWaitlist(count) {
    const customer = this.customer();
    if (!customer) return;
    if (!(count >= 1 && count <= MAX_SEATS)) {
      return this.say(`Ask for between 1 and ${MAX_SEATS} seats.`, "error");
    }
    try {
      const entry = await api.joinWaitlist(this.showId, count, customer, this.queue.passToken());
      this.say("");
      this.followEntry(entry);
    } catch (error) {
      if (queueWanted(error)) return this.passRefused(error);
      this.setStep("select");
      this.say(error.message, "error");
    }
  }

  followEntry(entry) {
    this.remember({ entry_id: entry.entry_id });
    this.selected.clear();
    this.map.setSelected([]);
    this.setStep("waiting");
    this.waitlist.follow(entry);
  }

  async leaveWaitlist() {
    try {
      await this.waitlist.leave();
    } catch (error) {
      this.say(error.message, "error");
    }
  }

  // The service wants a pass this tab does not have (never had, or it lapsed): the queue again.
  passRefused(error) {
    if (error.body.sale_opens_at) this.show.sale_opens_at = error.body.sale_opens_at;
    this.selected.clear();
    this.map.setSelected([]);
    this.closeSeats();
    this.queue.passRefused(error);
  }

  // ---- coming back to a show after a reload ----

  // A hold kept from before a reload, on a show behind the queue: still ours to pay for.
  async resumeHold() {
    const saved = JSON.parse(sessionStorage.getItem(this.storageKey()) || "null");
    if (!saved?.hold_id) return false;
    try {
      const hold = await api.getHold(saved.hold_id);
      if (hold.status === "active") {
        this.startPayment(hold);
        return true;
      }
    } catch {
      // Gone or unreachable: the queue then.
    }
    return false;
  }

  async resume() {
    const saved = JSON.parse(sessionStorage.getItem(this.storageKey()) || "null");
    if (!saved) return;
    try {
      if (saved.hold_id) {
        const hold = await api.getHold(saved.hold_id);
        if (hold.status === "active") return this.startPayment(hold);
      } else if (saved.entry_id) {
        const entry = await api.waitlistEntry(saved.entry_id);
        if (entry.status === "waiting" || entry.status === "granted") return this.followEntry(entry);
      }
    } catch {
      // Gone or unreachable: start afresh.
    }
    this.forget();
  }

  // What this tab holds or waits for on this show, kept across reloads.
  remember(what) {
    sessionStorage.setItem(this.storageKey(), JSON.stringify(what));
  }

  forget() {
    sessionStorage.removeItem(this.storageKey());
  }

  // ---- small helpers ----

  setStep(step) {
    this.step = step;
    for (const name of STEPS) $(`step-${name}`).hidden = name !== step;
  }

  say(text, tone = "info") {
    const message = $("message");
    message.textContent = sentence(text);
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
    return joinNames(this.sorted(ids).map((id) => {
      const seat = this.map.seats.get(id);
      return seat ? `row ${seat.row} seat ${seat.number}` : id;
    }));
  }

  // One list item per seat, front to back: "Row F seat 12 (standard) · 12.50 EUR".
  seatItems(ids) {
    return this.sorted(ids).map((id) => {
      const seat = this.map.seats.get(id);
      const price = this.map.priceOf(id);
      const name = seat ? `Row ${seat.row} seat ${seat.number} (${seat.category})` : id;
      return listItem(price ? `${name} · ${formatMoney(price.amount, price.currency)}` : name);
    });
  }

  total(ids) {
    const prices = [...ids].map((id) => this.map.priceOf(id)).filter(Boolean);
    if (prices.length === 0) return "";
    const sum = prices.reduce((acc, p) => acc + p.amount, 0);
    return formatMoney(sum, prices[0].currency);
  }
}

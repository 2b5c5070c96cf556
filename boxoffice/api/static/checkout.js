// Paying for a hold: the countdown to its expiry, payment with one of the
// simulated provider's test cards, and releasing it.

import { api, ApiError, NetworkError, randomKey } from "./api.js";
import { sentence } from "./text.js";

const $ = (id) => document.getElementById(id);
// Retries of one payment attempt whose answer was lost on the way.
const CONFIRM_RETRIES = 3;

export class Checkout {
  // page: the ShowPage, for say(), setStep(), seatItems(), total(),
  // holdEnded(message, tone) and booked(booking).
  constructor(page) {
    this.page = page;
    this.hold = null;
    this.expiresAt = 0;
    this.paying = false;
    this.timer = null;
    $("pay-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.pay();
    });
    $("release-button").addEventListener("click", () => this.release());
  }

  start(hold) {
    this.stop();
    this.hold = hold;
    // ttl_s is counted from now, so a visitor's wrong clock cannot cut the
    // countdown short; expires_at is the fallback.
    this.expiresAt = typeof hold.ttl_s === "number"
      ? Date.now() + hold.ttl_s * 1000
      : Date.parse(hold.expires_at);
    this.warnedLastMinute = false;
    $("held-list").replaceChildren(...this.page.seatItems(hold.seats));
    $("held-total").textContent = `Total ${this.page.total(hold.seats)}`;
    this.setPaying(false);
    this.timer = setInterval(() => this.tick(), 250);
    this.tick();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.hold = null;
    this.paying = false;
  }

  tick() {
    const left = Math.max(0, Math.ceil((this.expiresAt - Date.now()) / 1000));
    $("countdown").textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    if (left <= 60 && left > 0 && !this.warnedLastMinute) {
      this.warnedLastMinute = true;
      this.page.say("Less than a minute left to pay for your seats.");
    }
    // A payment under way decides for itself; otherwise the hold is over.
    if (left === 0 && !this.paying) this.expired();
  }

  expired() {
    this.stop();
    this.page.holdEnded(
      "Your hold expired and the seats were released. Pick seats again to start over.", "error");
  }

  setPaying(paying) {
    this.paying = paying;
    $("pay-button").disabled = paying;
    $("release-button").disabled = paying;
    $("pay-button").textContent = paying ? "Paying…" : `Pay ${this.page.total(this.hold.seats)}`;
  }

  async pay() {
    if (!this.hold || this.paying) return;
    const hold = this.hold;
    const token = $("card").value;
    // A fresh key per attempt; the same key again only when the answer was
    // lost, so a retry can never charge twice.
    const key = randomKey();
    this.setPaying(true);
    this.page.say("Paying…");
    for (let attempt = 0; ; attempt++) {
      try {
        const booking = await api.confirm(hold.hold_id, token, key);
        this.stop();
        return this.page.booked({ ...booking, seats: booking.seats ?? hold.seats });
      } catch (error) {
        if (error instanceof NetworkError && attempt < CONFIRM_RETRIES) {
          await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
          continue;
        }
        return this.failed(error);
      }
    }
  }

  failed(error) {
    const code = error instanceof ApiError ? error.code : "network";
    if (code === "hold_expired" || (code !== "payment_declined" && Date.now() >= this.expiresAt)) {
      return this.expired();
    }
    if (code === "hold_not_active") {
      this.stop();
      return this.page.holdEnded(error.message, "error");
    }
    this.setPaying(false);
    if (code === "payment_declined") {
      this.page.say("Your card was declined and nothing was charged. " +
        "Try another card while your seats are still held.", "error");
    } else {
      this.page.say(`${sentence(error.message)} Nothing was booked: ` +
        "you can try again while your seats are held.", "error");
    }
    // Declined near the end: the countdown may have run out meanwhile.
    this.tick();
  }

  async release() {
    if (!this.hold) return;
    try {
      await api.release(this.hold.hold_id);
      this.stop();
      this.page.holdEnded("Your seats were released.", "info");
    } catch (error) {
      if (error instanceof ApiError && error.code === "hold_not_active") {
        this.stop();
        this.page.holdEnded("That hold had already ended.", "info");
      } else {
        this.page.say(error.message, "error");
      }
    }
  }
}

// Following one waitlist entry live: its place in the queue, from the entry's
// events stream, until it ends granted, impossible, cancelled or expired.

import { api, ApiError, followRecord } from "./api.js";
import { formatDuration } from "./text.js";

const $ = (id) => document.getElementById(id);

const ENDINGS = {
  impossible: "Not enough seats can come free for this show any more, sorry.",
  cancelled: "You left the waitlist.",
  expired: "Your place on the waitlist expired.",
};

export class WaitlistWatch {
  // onGranted(hold): seats were freed and are held for us.
  // onEnded(message, status): the entry ended without seats.
  constructor({ onGranted, onEnded }) {
    this.onGranted = onGranted;
    this.onEnded = onEnded;
    this.entry = null;
    this.source = null;
  }

  follow(entry) {
    this.stop();
    this.entry = entry;
    this.source = followRecord(api.waitlistEventsUrl(entry.entry_id), () => api.waitlistEntry(entry.entry_id),
      (read) => this.update(read));
    this.update(entry);
  }

  update(entry) {
    if (!this.entry || entry.entry_id !== this.entry.entry_id) return;
    this.entry = entry;
    $("wait-position").textContent = entry.position || "–"; // 0 once granted
    $("wait-eta").textContent = typeof entry.eta_s === "number"
      ? `Estimated wait: about ${formatDuration(entry.eta_s)}.`
      : "";
    // The join answer may already say "granted", but without the hold: the
    // stream and the read on connect bring it.
    if (entry.status === "granted" && entry.hold) {
      this.stop();
      this.onGranted(entry.hold);
    } else if (entry.status in ENDINGS) {
      this.stop();
      this.onEnded(ENDINGS[entry.status], entry.status);
    }
  }

  async leave() {
    try {
      await api.leaveWaitlist(this.entry.entry_id);
    } catch (error) {
      // Already gone is as good as left.
      if (!(error instanceof ApiError && error.status === 404)) throw error;
    }
    this.stop();
    this.onEnded(ENDINGS.cancelled, "cancelled");
  }

  stop() {
    this.source?.close();
    this.source = null;
    this.entry = null;
  }
}

// The hall's seating plan, drawn to scale from each seat's x/y. Aisles are
// simply the gaps the data leaves; the screen is at the smallest y (the front).
// Seats are checkbox buttons with one roving tab stop: arrow keys move between
// seats by position, Space or Enter picks one.

import { formatMoney } from "./text.js";

const STATUS_TEXT = {
  available: "available",
  selected: "selected by you",
  mine: "held for you",
  held: "held by someone else",
  booked: "booked",
};

export class SeatMap {
  constructor(container, { onToggle, onFocusSeat }) {
    this.container = container;
    this.onToggle = onToggle;
    this.onFocusSeat = onFocusSeat;
    this.seats = new Map(); // id -> seat object from the service
    this.buttons = new Map(); // id -> button element
    this.selected = new Set(); // picked, not yet held
    this.mine = new Set(); // held (or booked) by this page
    this.prices = new Map(); // category -> {amount, currency}
    this.focusedId = null;
  }

  setPrices(prices) {
    this.prices = new Map(prices.map((p) => [p.category, p]));
    for (const id of this.seats.keys()) this.refresh(id);
  }

  // "H–J" or "A, C, F": the rows of each price category, for the price list.
  rowsByCategory() {
    const rows = new Map();
    for (const seat of [...this.seats.values()].sort((a, b) => a.y - b.y)) {
      if (!rows.has(seat.category)) rows.set(seat.category, []);
      const list = rows.get(seat.category);
      if (list.at(-1) !== seat.row) list.push(seat.row);
    }
    const order = [...new Set([...this.seats.values()].sort((a, b) => a.y - b.y).map((s) => s.row))];
    const describe = (list) => {
      const first = order.indexOf(list[0]);
      const contiguous = list.every((row, i) => order[first + i] === row);
      if (list.length > 2 && contiguous) return `rows ${list[0]}–${list.at(-1)}`;
      return `${list.length === 1 ? "row" : "rows"} ${list.join(", ")}`;
    };
    return new Map([...rows].map(([category, list]) => [category, describe(list)]));
  }

  priceOf(id) {
    const seat = this.seats.get(id);
    return seat ? this.prices.get(seat.category) : undefined;
  }

  // The first event of the stream (and every reconnect) carries the whole map.
  load(seats) {
    this.seats = new Map(seats.map((s) => [s.id, { ...s }]));
    this.draw();
  }

  // Later events carry only {id, status} of the seats that changed.
  applyDelta(changes) {
    for (const { id, status } of changes) {
      const seat = this.seats.get(id);
      if (!seat) continue;
      seat.status = status;
      this.refresh(id);
    }
  }

  statusOf(id) {
    if (this.mine.has(id)) return "mine";
    if (this.selected.has(id)) return "selected";
    return this.seats.get(id)?.status ?? "booked";
  }

  setSelected(ids) {
    const before = this.selected;
    this.selected = new Set(ids);
    for (const id of new Set([...before, ...this.selected])) this.refresh(id);
  }

  setMine(ids) {
    const before = this.mine;
    this.mine = new Set(ids);
    for (const id of new Set([...before, ...this.mine])) this.refresh(id);
  }

  describe(id) {
    const seat = this.seats.get(id);
    const price = this.priceOf(id);
    const parts = [`Row ${seat.row} seat ${seat.number}`, seat.category];
    if (price) parts.push(formatMoney(price.amount, price.currency));
    if (seat.kind === "wheelchair") parts.push("wheelchair space");
    if (seat.kind === "companion") parts.push("companion seat");
    parts.push(STATUS_TEXT[this.statusOf(id)]);
    return parts.join(", ");
  }

  refresh(id) {
    const button = this.buttons.get(id);
    if (!button) return;
    const status = this.statusOf(id);
    button.dataset.status = status;
    button.setAttribute("aria-checked", String(status === "selected" || status === "mine"));
    // aria-disabled rather than disabled: taken seats stay reachable by the
    // arrow keys so a screen-reader user hears what is there.
    button.setAttribute("aria-disabled", String(status === "held" || status === "booked"));
    const label = this.describe(id);
    button.setAttribute("aria-label", label);
    button.title = label;
    if (id === this.focusedId && document.activeElement === button) this.onFocusSeat(id);
  }

  draw() {
    this.container.replaceChildren();
    this.buttons.clear();
    const seats = [...this.seats.values()];
    if (seats.length === 0) return;

    const xs = seats.map((s) => s.x);
    const ys = seats.map((s) => s.y);
    const pitchX = smallestGap(seats, "x", "y") || 1;
    const pitchY = smallestGap(seats, "y", "x") || pitchX;
    const seatSize = 0.84 * Math.min(pitchX, pitchY);
    // One spare pitch each side leaves room for the row letters.
    const minX = Math.min(...xs) - pitchX * 1.2;
    const maxX = Math.max(...xs) + pitchX * 1.2;
    const minY = Math.min(...ys) - pitchY * 0.5;
    const maxY = Math.max(...ys) + pitchY * 0.5;
    const width = maxX - minX;
    const height = maxY - minY;
    const columns = width / pitchX;

    const plan = this.container;
    plan.style.setProperty("aspect-ratio", `${width} / ${height}`);
    // Keep seats finger-sized on a phone: the plan scrolls sideways instead.
    plan.style.setProperty("min-width", `${Math.round(columns * 1.4)}rem`);
    plan.style.setProperty("--seat-w", `${(100 * seatSize) / width}cqi`);
    const place = (el, x, y) => {
      el.style.setProperty("left", `${(100 * (x - minX)) / width}%`);
      el.style.setProperty("top", `${(100 * (y - minY)) / height}%`);
    };

    for (const [row, rowSeats] of groupBy(seats, (s) => s.row)) {
      const y = rowSeats[0].y;
      const rowXs = rowSeats.map((s) => s.x);
      for (const x of [Math.min(...rowXs) - pitchX * 0.85, Math.max(...rowXs) + pitchX * 0.85]) {
        const label = document.createElement("span");
        label.className = "row-label";
        label.setAttribute("aria-hidden", "true");
        label.textContent = row;
        place(label, x, y);
        plan.append(label);
      }
    }

    const ordered = seats.sort((a, b) => a.y - b.y || a.x - b.x);
    for (const seat of ordered) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "seat";
      button.setAttribute("role", "checkbox");
      button.dataset.seat = seat.id;
      button.dataset.kind = seat.kind || "standard";
      button.tabIndex = -1;
      place(button, seat.x, seat.y);
      button.addEventListener("click", () => this.onToggle(seat.id));
      button.addEventListener("focus", () => {
        this.moveTabStop(seat.id);
        this.onFocusSeat(seat.id);
      });
      button.addEventListener("blur", () => this.onFocusSeat(null));
      button.addEventListener("keydown", (event) => this.onKey(event, seat.id));
      this.buttons.set(seat.id, button);
      plan.append(button);
      this.refresh(seat.id);
    }
    const first = this.buttons.has(this.focusedId) ? this.focusedId : ordered[0].id;
    this.moveTabStop(first);
    // On a narrow screen the plan scrolls sideways: start at its middle.
    const scroller = plan.closest(".hall-scroll");
    if (scroller) scroller.scrollLeft = (scroller.scrollWidth - scroller.clientWidth) / 2;
  }

  moveTabStop(id) {
    if (this.focusedId && this.buttons.has(this.focusedId)) {
      this.buttons.get(this.focusedId).tabIndex = -1;
    }
    this.focusedId = id;
    this.buttons.get(id).tabIndex = 0;
  }

  onKey(event, id) {
    const target = this.neighbour(id, event.key);
    if (target === undefined) return;
    event.preventDefault();
    if (target) this.buttons.get(target).focus();
  }

  // The nearest seat in the direction of the key, by position on the plan.
  neighbour(id, key) {
    const here = this.seats.get(id);
    const all = [...this.seats.values()];
    const sameRow = all.filter((s) => s.row === here.row);
    const pick = (candidates, cost) =>
      candidates.reduce((best, s) => (best && cost(best) <= cost(s) ? best : s), null)?.id ?? null;
    switch (key) {
      case "ArrowLeft":
        return pick(sameRow.filter((s) => s.x < here.x), (s) => here.x - s.x);
      case "ArrowRight":
        return pick(sameRow.filter((s) => s.x > here.x), (s) => s.x - here.x);
      case "ArrowUp":
        return pick(all.filter((s) => s.y < here.y), (s) => (here.y - s.y) * 1000 + Math.abs(s.x - here.x));
      case "ArrowDown":
        return pick(all.filter((s) => s.y > here.y), (s) => (s.y - here.y) * 1000 + Math.abs(s.x - here.x));
      case "Home":
        return pick(sameRow, (s) => s.x);
      case "End":
        return pick(sameRow, (s) => -s.x);
      default:
        return undefined;
    }
  }
}

// The smallest positive distance along `axis` between seats that share the
// other coordinate: the seat pitch within a row (or between rows).
function smallestGap(seats, axis, other) {
  let best = Infinity;
  for (const group of groupBy(seats, (s) => s[other]).values()) {
    const values = [...new Set(group.map((s) => s[axis]))].sort((a, b) => a - b);
    for (let i = 1; i < values.length; i++) best = Math.min(best, values[i] - values[i - 1]);
  }
  if (best === Infinity) {
    // Nothing shares a line (a single row, say): fall back to any distinct values.
    const values = [...new Set(seats.map((s) => s[axis]))].sort((a, b) => a - b);
    for (let i = 1; i < values.length; i++) best = Math.min(best, values[i] - values[i - 1]);
  }
  return Number.isFinite(best) ? best : 0;
}

function groupBy(items, key) {
  const groups = new Map();
  for (const item of items) {
    const k = key(item);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(item);
  }
  return groups;
}

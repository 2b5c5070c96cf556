// Small wording and formatting helpers shared by the page's modules.

// "12.50 EUR": the same in every locale, and read out clearly by screen readers.
export function formatMoney(amount, currency) {
  let digits = 2;
  try {
    digits = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions()
      .maximumFractionDigits;
  } catch {
    // An unknown currency code: keep two decimals.
  }
  return `${(amount / 10 ** digits).toFixed(digits)} ${currency}`;
}

// Show times in the visitor's own time zone and language.
export function formatTime(iso) {
  return new Date(iso).toLocaleString(undefined, {
    weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
  });
}

export function formatDuration(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  return `${Math.round(seconds / 60)} min`;
}

// "1 seat", "2 seats".
export function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

// The service's messages are lower-case clauses ("the payment was declined; ...").
export function sentence(text) {
  if (!text) return "";
  const capital = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?…]$/.test(capital) ? capital : `${capital}.`;
}

// "Row F seat 11, row F seat 12 and row G seat 3".
export function joinNames(names) {
  const text = names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names.at(-1)}` : names[0] ?? "";
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function listItem(text) {
  const li = document.createElement("li");
  li.textContent = text;
  return li;
}

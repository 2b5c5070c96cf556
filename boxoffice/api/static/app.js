// The journey: city → movie → cinema and show time → seats. Each step is a
// hash route so the back button, reloads and shared links all work:
//   #/                          cities
//   #/city/C                    movies showing in city C
//   #/city/C/movie/M            cinemas and show times
//   #/city/C/movie/M/show/S     the seat plan (also #/show/S on its own)
//   #/booking/B                 a booking: its tickets, and cancelling it

import { api, randomKey } from "./api.js";
import { ShowPage } from "./booking.js";
import { formatMoney, formatTime } from "./text.js";

const $ = (id) => document.getElementById(id);
const names = { city: new Map(), movie: new Map() }; // for the breadcrumbs
let showPage;

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const route = {};
  for (let i = 0; i + 1 < parts.length; i += 2) route[parts[i]] = parts[i + 1];
  return route;
}

function href(route) {
  const parts = ["city", "movie", "show"]
    .filter((key) => route[key])
    .map((key) => `${key}/${encodeURIComponent(route[key])}`);
  return `#/${parts.join("/")}`;
}

function showView(id) {
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== id;
  $("page-error").hidden = true;
}

async function render() {
  const route = parseRoute();
  if (!route.show) showPage?.close();
  try {
    if (route.booking) await renderBooking(route.booking);
    else if (route.show) await renderShow(route);
    else if (route.city && route.movie) await renderShows(route);
    else if (route.city) await renderMovies(route);
    else await renderCities();
  } catch (error) {
    $("page-error").textContent = error.message;
    $("page-error").hidden = false;
  }
}

async function renderCities() {
  showView("view-cities");
  renderCrumbs({});
  const { cities } = await loading($("city-list"), api.cities());
  for (const city of cities) names.city.set(city.id, city.name);
  fill($("city-list"), cities, (city) =>
    link(href({ city: city.id }), city.name,
      `${city.country} · ${city.cinema_count} cinema${city.cinema_count === 1 ? "" : "s"}`),
  );
}

async function renderMovies(route) {
  showView("view-movies");
  await knowCity(route.city);
  renderCrumbs(route);
  $("movies-title").textContent = `Movies in ${names.city.get(route.city) ?? "this city"}`;
  const { movies } = await loading($("movie-list"), api.movies(route.city));
  for (const movie of movies) names.movie.set(movie.id, movie.title);
  fill($("movie-list"), movies, (movie) =>
    link(href({ city: route.city, movie: movie.id }), movie.title,
      [movie.rating, movie.runtime_min && `${movie.runtime_min} min`, (movie.genres ?? []).join(", ")]
        .filter(Boolean).join(" · ")),
  );
}

async function renderShows(route) {
  showView("view-shows");
  await knowCity(route.city);
  renderCrumbs(route);
  const list = $("cinema-list");
  const { cinemas } = await loading(list, api.shows(route.city, route.movie));
  const title = names.movie.get(route.movie);
  $("shows-title").textContent = title ? `${title}: cinemas and show times` : "Cinemas and show times";
  if (cinemas.length === 0) list.append(paragraph("No upcoming shows here.", "hint"));
  for (const cinema of cinemas) {
    const section = document.createElement("section");
    section.className = "cinema";
    const heading = document.createElement("h2");
    heading.textContent = cinema.name;
    const times = document.createElement("ul");
    times.className = "times";
    fill(times, cinema.shows, (show) =>
      link(href({ ...route, show: show.id }), formatTime(show.starts_at),
        `${show.hall.name} · ${show.available} free`),
    );
    section.append(heading, paragraph(cinema.address ?? "", "meta"), times);
    list.append(section);
  }
}

async function renderShow(route) {
  showView("view-show");
  showPage ??= new ShowPage();
  const opening = showPage.open(route.show);
  if (route.city) await knowCity(route.city);
  await opening;
  if (showPage.show?.movie?.title && route.movie) names.movie.set(route.movie, showPage.show.movie.title);
  renderCrumbs(route, showPage.show);
}

// The booking id is the credential: whoever has the link sees the booking and may cancel it.
async function renderBooking(bookingId) {
  showView("view-booking");
  renderCrumbs({});
  $("my-booking-id").textContent = bookingId;
  $("my-booking-message").hidden = true;
  const booking = await loading($("my-booking-seats"), api.booking(bookingId));
  const show = await api.show(booking.show_id).catch(() => null);
  showBooking(booking, show);
}

function showBooking(booking, show) {
  const cancelled = booking.status === "cancelled";
  $("my-booking-show").textContent = show
    ? `${show.movie.title} · ${show.cinema.name}, ${show.hall.name} · ${formatTime(show.starts_at)}`
    : "";
  $("my-booking-status").textContent = cancelled
    ? `Cancelled. Refund of ${formatMoney(booking.refund.amount, booking.refund.currency)}: ${booking.refund.status}.`
    : "Confirmed.";
  fill($("my-booking-seats"), booking.seats, (seat) => document.createTextNode(`Seat ${seat}`));
  $("my-booking-total").textContent = `${cancelled ? "Was" : "Paid"} ${formatMoney(booking.amount, booking.currency)}`;
  const button = $("my-booking-cancel");
  const until = booking.cancel_until ?? show?.starts_at;
  button.hidden = cancelled || !until || new Date(until) <= new Date();
  button.onclick = () => cancelBooking(booking, show);
}

async function cancelBooking(booking, show) {
  if (!confirm("Cancel this booking? The seats go back on sale and the payment is refunded.")) return;
  // One key per booking, kept for the tab: a retry after a lost answer is the same cancel.
  const slot = `cancel:${booking.booking_id}`;
  const key = sessionStorage.getItem(slot) ?? randomKey();
  sessionStorage.setItem(slot, key);
  const button = $("my-booking-cancel");
  const message = $("my-booking-message");
  button.disabled = true;
  try {
    showBooking(await api.cancelBooking(booking.booking_id, key), show);
    message.textContent = "The booking is cancelled.";
    delete message.dataset.tone;
  } catch (error) {
    message.textContent = error.message;
    message.dataset.tone = "error";
    if (error.code === "cancel_too_late") button.hidden = true;
  } finally {
    button.disabled = false;
    message.hidden = false;
  }
}

// A deep link names the city by id only: look its name up once.
async function knowCity(cityId) {
  if (names.city.has(cityId)) return;
  const { cities } = await api.cities();
  for (const city of cities) names.city.set(city.id, city.name);
}

function renderCrumbs(route, show) {
  const crumbs = [["Cities", href({})]];
  if (route.city) crumbs.push([names.city.get(route.city) ?? "City", href({ city: route.city })]);
  if (route.movie) {
    crumbs.push([names.movie.get(route.movie) ?? "Movie", href({ city: route.city, movie: route.movie })]);
  }
  if (route.show) crumbs.push([show ? formatTime(show.starts_at) : "Seats", href(route)]);
  $("crumbs").replaceChildren(
    ...crumbs.map(([text, target], i) => {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = target;
      a.textContent = text;
      if (i === crumbs.length - 1) a.setAttribute("aria-current", "page");
      li.append(a);
      return li;
    }),
  );
}

async function loading(list, promise) {
  list.replaceChildren(note(list, "Loading…"));
  list.setAttribute("aria-busy", "true");
  try {
    return await promise;
  } finally {
    list.replaceChildren();
    list.setAttribute("aria-busy", "false");
  }
}

function fill(list, items, make) {
  if (items.length === 0) list.append(note(list, "Nothing here yet."));
  for (const item of items) {
    const li = document.createElement("li");
    li.append(make(item));
    list.append(li);
  }
}

function link(target, title, detail) {
  const a = document.createElement("a");
  a.href = target;
  a.className = "choice";
  const strong = document.createElement("strong");
  strong.textContent = title;
  a.append(strong);
  if (detail) {
    a.append(" "); // keeps the accessible name "Lisbon PT · 2 cinemas", not "LisbonPT…"
    const span = document.createElement("span");
    span.textContent = detail;
    a.append(span);
  }
  return a;
}

// A hint inside a list must itself be a list item.
function note(list, text) {
  if (list.tagName !== "UL") return paragraph(text, "hint");
  const li = document.createElement("li");
  li.className = "hint";
  li.textContent = text;
  return li;
}

function paragraph(text, className) {
  const p = document.createElement("p");
  p.textContent = text;
  if (className) p.className = className;
  return p;
}

window.addEventListener("hashchange", () => {
  render();
  $("main").focus({ preventScroll: true });
});
render();

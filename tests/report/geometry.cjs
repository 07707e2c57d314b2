// Opens a hephy HTML report in headless Chromium (Debian's, driven by playwright-core) at
// 1400×800 and measures, from the DOM, what a person would see wrong: an edge crossing a card
// other than its two ends (each edge path sampled every 3 px against every card's box), an edge
// without an arrowhead, a card off-screen after the page has fitted itself, a label cut with no
// title holding its whole text. It measures the page as loaded, after "expand all" and after
// "collapse all", keeps a screenshot of each (PREFIX-STATE.png), and prints the facts as JSON.
// Usage: node geometry.cjs PLAYWRIGHT_CORE_DIR REPORT.html PREFIX
"use strict";
const [, , playwrightDir, report, prefix] = process.argv;
const { chromium } = require(playwrightDir);
const { pathToFileURL } = require("url");

// Runs in the page: the faults of what is drawn now.
function measure() {
  const cards = [...document.querySelectorAll(".node")].map((el) => {
    // Boxes in the drawing's own coordinates (the edges' SVG sits at the same origin).
    return { id: el.dataset.id, x: el.offsetLeft, y: el.offsetTop, w: el.offsetWidth, h: el.offsetHeight, el };
  });
  const cell = 100, grid = new Map();
  cards.forEach((c, i) => {
    for (let gx = Math.floor(c.x / cell); gx <= Math.floor((c.x + c.w) / cell); gx++)
      for (let gy = Math.floor(c.y / cell); gy <= Math.floor((c.y + c.h) / cell); gy++) {
        const k = gx + ":" + gy;
        if (!grid.has(k)) grid.set(k, []);
        grid.get(k).push(i);
      }
  });
  const inside = (c, p, m) => p.x > c.x + m && p.x < c.x + c.w - m && p.y > c.y + m && p.y < c.y + c.h - m;
  const at = (p, m) => (grid.get(Math.floor(p.x / cell) + ":" + Math.floor(p.y / cell)) || []).filter((i) => inside(cards[i], p, m));
  const edges = [...document.querySelectorAll("svg#edges path")].filter((p) => !p.closest("marker"));
  const crossings = [], noArrow = [], loose = [];
  edges.forEach((path) => {
    const len = path.getTotalLength();
    const start = path.getPointAtLength(0), end = path.getPointAtLength(len);
    // An edge's ends are the cards it starts and ends on (touching their border).
    const ends = new Set([...at(start, -3), ...at(end, -3)]);
    if (at(start, -3).length === 0 || at(end, -3).length === 0) loose.push(path.getAttribute("d").slice(0, 80));
    for (let l = 0; l <= len; l += 3) {
      const p = path.getPointAtLength(l);
      const hit = at(p, 1).find((i) => !ends.has(i));
      if (hit !== undefined) {
        const from = [...ends].map((i) => cards[i].id).join(" → ");
        crossings.push(`edge ${from} crosses ${cards[hit].id} at (${p.x.toFixed(0)}, ${p.y.toFixed(0)})`);
        break;
      }
    }
    const marker = (path.getAttribute("marker-end") || getComputedStyle(path).markerEnd || "").match(/url\("?#([^)"]+)"?\)/);
    const head = marker && document.getElementById(marker[1]);
    if (!head || !head.querySelector("path, polygon")) noArrow.push(path.getAttribute("d").slice(0, 80));
  });
  const view = document.querySelector("#canvas").getBoundingClientRect();
  const offscreen = cards.filter((c) => {
    const r = c.el.getBoundingClientRect();
    return r.left < view.left - 1 || r.top < view.top - 1 || r.right > Math.min(view.right, innerWidth) + 1 ||
      r.bottom > Math.min(view.bottom, innerHeight) + 1;
  }).map((c) => c.id);
  const cut = [];
  document.querySelectorAll(".node *").forEach((el) => {
    if (el.scrollWidth <= el.clientWidth + 1) return;
    const text = el.textContent.trim();
    const titled = [el, el.closest(".node")].some((t) => (t.getAttribute("title") || "").includes(text));
    if (!titled) cut.push(text);
  });
  return { cards: cards.length, edges: edges.length, crossings, noArrow, loose, offscreen, cut };
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
  page.setDefaultTimeout(180000); // laying out 1,000 nodes on a loaded 2-core machine
  const requests = [];
  page.on("request", (r) => { if (!r.url().startsWith("file:")) requests.push(r.url()); });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(pathToFileURL(report).href);
  await page.waitForSelector(".node");
  const states = {};
  states.loaded = await page.evaluate(measure);
  await page.screenshot({ path: `${prefix}-loaded.png` });
  for (const state of ["expand", "collapse"]) {
    const button = page.locator(`#${state}`);
    if ((await button.count()) === 0) { states[state] = null; continue; }
    await button.click();
    await page.waitForSelector(".node");
    states[state] = await page.evaluate(measure);
    await page.screenshot({ path: `${prefix}-${state}.png` });
  }
  await browser.close();
  console.log(JSON.stringify({ errors, requests, states }));
})().catch((e) => { console.error(e); process.exit(1); });

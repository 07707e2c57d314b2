// Opens a hephy HTML report in headless Chromium (Debian's, driven by playwright-core), hovers
// over one node, searches, clicks the node as a person would, and prints what the page shows as
// JSON; keeps a screenshot.
// Usage: node browse.cjs PLAYWRIGHT_CORE_DIR REPORT.html NODE_ID SCREENSHOT.png
"use strict";
const [, , playwrightDir, report, nodeId, screenshot] = process.argv;
const { chromium } = require(playwrightDir);
const { pathToFileURL } = require("url");

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
  const requests = [];
  page.on("request", (r) => { if (!r.url().startsWith("file:")) requests.push(r.url()); });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(pathToFileURL(report).href);
  await page.waitForSelector(".node");
  const nodes = await page.locator(".node").count();
  const before = await page.locator("#details").innerText();
  const card = await page.locator(`.node[data-id="${nodeId}"]`).innerText();
  const critical = await page.locator(".node.crit").count();
  const criticalHow = await page.locator("#crit-how").innerText().catch(() => "");
  await page.locator(`.node[data-id="${nodeId}"]`).hover();
  const lit = await page.locator(".node.lit").evaluateAll((els) => els.map((e) => e.dataset.id));
  await page.mouse.move(1, 790);
  await page.locator("#search").fill("docs");
  const matches = await page.locator("#matches").innerText();
  const dimmed = await page.locator(".node.dim").count();
  await page.locator("#search").fill("");
  await page.locator(`.node[data-id="${nodeId}"]`).click();
  const details = await page.locator("#details").innerText();
  const classes = await page.locator(`.node[data-id="${nodeId}"]`).getAttribute("class");
  const counts = await page.locator("#counts").innerText();
  const title = await page.title();
  const scripts = await page.locator("script").count();
  await page.screenshot({ path: screenshot, fullPage: true });
  await browser.close();
  console.log(JSON.stringify({ nodes, before, card, critical, criticalHow, lit, matches, dimmed, details, classes, counts, title, scripts, requests, errors }));
})().catch((e) => { console.error(e); process.exit(1); });

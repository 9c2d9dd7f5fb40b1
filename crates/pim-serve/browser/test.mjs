// The real-browser test of `pim-chat serve`'s page (issue 15, item 5): the system's Chromium,
// driven by playwright-core (pinned in package-lock.json), against the real `pim-chat --demo
// serve` binary signing in with a fake Entra ID authority (examples/serve_fixture.rs).
//
//   node crates/pim-serve/browser/test.mjs --fixture PATH/serve_fixture --pim-chat PATH/pim-chat
//
// The ID token goes in X-MS-TOKEN-AAD-ID-TOKEN on every request, as App Service / Container
// Apps authentication sends it: the page itself holds no token. Screenshots (1280 px and a
// 390 px phone) and the downloaded reports go to $CI_OUTPUT_DIR/browser (default
// target/ci-output/browser under the repository). Any failed check exits 1.
import { spawn } from "node:child_process";
import http from "node:http";
import { createInterface } from "node:readline";
import { mkdirSync, readFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "..", "..", "..");

function argument(name) {
  const at = process.argv.indexOf(name);
  if (at < 0 || at + 1 >= process.argv.length) throw new Error(`${name} PATH is required`);
  return resolve(process.argv[at + 1]);
}

const fixturePath = argument("--fixture");
const pimChat = argument("--pim-chat");
const chromiumPath = process.env.PIM_CHROMIUM || "/usr/bin/chromium";
const out = join(resolve(process.env.CI_OUTPUT_DIR || join(repo, "target", "ci-output")), "browser");
mkdirSync(out, { recursive: true });
if (!existsSync(chromiumPath)) throw new Error(`no Chromium at ${chromiumPath} (set PIM_CHROMIUM)`);

const WAIT = 60_000;
const step = (text) => console.log(`  - ${text}`);

// The fixture prints one JSON line once the server listens; its stderr is the server's log.
function startFixture() {
  const child = spawn(fixturePath, ["--pim-chat", pimChat], { stdio: ["pipe", "pipe", "pipe"] });
  const log = [];
  createInterface({ input: child.stderr }).on("line", (line) => log.push(line));
  const ready = new Promise((resolveReady, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once("line", (line) => resolveReady(JSON.parse(line)));
    child.once("exit", (code) => reject(new Error(`the fixture exited (${code}) before the server listened:\n${log.join("\n")}`)));
    setTimeout(() => reject(new Error(`the server did not start in ${WAIT} ms:\n${log.join("\n")}`)), WAIT);
  });
  return { child, log, ready };
}

// The platform's front end, as App Service / Container Apps authentication behaves: the
// browser holds only a session cookie (AppServiceAuthSession); the front end drops any
// X-MS-* header a client sent, puts the session's ID token in X-MS-TOKEN-AAD-ID-TOKEN, and
// answers /.auth/refresh by renewing the session's token. `sessions` maps a cookie to its
// token and to the token a refresh gives.
function startPlatform(upstream, sessions) {
  const target = new URL(upstream);
  const server = http.createServer((req, res) => {
    const cookie = /(?:^|;\s*)AppServiceAuthSession=([^;]+)/.exec(req.headers.cookie || "");
    const session = cookie && sessions[cookie[1]];
    if (req.url === "/.auth/refresh") {
      if (session && session.refreshed) {
        session.token = session.refreshed;
        session.refreshes = (session.refreshes || 0) + 1;
        res.writeHead(200).end();
      } else {
        res.writeHead(401).end();
      }
      return;
    }
    const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !k.startsWith("x-ms-")));
    if (session) headers["x-ms-token-aad-id-token"] = session.token;
    headers.host = target.host;
    const forward = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    forward.on("error", () => res.writeHead(502).end());
    req.pipe(forward);
  });
  return new Promise((ready) => server.listen(0, "127.0.0.1", () => ready({ server, url: `http://127.0.0.1:${server.address().port}` })));
}

// Console errors and warnings, uncaught exceptions and CSP violations of one page.
function watch(page, problems) {
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()} (${m.location().url || "?"})`);
  });
  page.on("pageerror", (e) => problems.push(`uncaught: ${e.message}`));
}

async function violations(page) {
  return page.evaluate(() => window.__cspViolations || []);
}

async function newContext(browser, url, viewport, session, extra = {}) {
  const context = await browser.newContext({ viewport, acceptDownloads: true, ...extra });
  if (session) await context.addCookies([{ name: "AppServiceAuthSession", value: session, url }]);
  // Recorded from the first script on, before the page's own: any CSP violation at all.
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
    });
  });
  return context;
}

// Types a line and waits for the agent's answer to it (a new agent or error message).
async function ask(page, text) {
  const before = await page.locator("#messages li.agent, #messages li.error").count();
  await page.fill("#text", text);
  await page.press("#text", "Enter");
  const answer = page.locator("#messages li.agent, #messages li.error").nth(before);
  await answer.waitFor({ timeout: WAIT });
  await page.waitForFunction(() => !document.getElementById("send").disabled, null, { timeout: WAIT });
  const cls = await answer.getAttribute("class");
  assert.equal(cls, "agent", `"${text}" got an error: ${await answer.textContent()}`);
  return answer;
}

// After `scan`: the table is shown with one row per activation and a badge for each verdict
// and risk.
async function checkTable(page) {
  await page.locator("#activations").waitFor({ state: "visible", timeout: WAIT });
  const rows = page.locator("#rows tr");
  const count = await rows.count();
  assert.ok(count >= 10, `the demo tenant has 15 activations, the table shows ${count}`);
  const verdicts = await page.locator("#rows .badge[class*='verdict-']").allTextContents();
  const risks = await page.locator("#rows .badge[class*='risk-']").allTextContents();
  assert.equal(verdicts.length, count, "a verdict badge in every row");
  assert.equal(risks.length, count, "a risk badge in every row");
  for (const v of ["aligned", "not aligned", "no activity"]) assert.ok(verdicts.includes(v), `a "${v}" badge among ${verdicts}`);
  assert.ok(risks.includes("critical") || risks.includes("high"), `a high or critical risk among ${risks}`);
  // Badges are styled: the stylesheet loaded and applied.
  const background = await page.locator("#rows .badge.risk-critical, #rows .badge.risk-high").first().evaluate((e) => getComputedStyle(e).backgroundColor);
  assert.notEqual(background, "rgba(0, 0, 0, 0)", "badges have their colour");
  return count;
}

let fixture;
let platform;

async function main() {
  fixture = startFixture();
  const problems = [];
  let browser;
  try {
    const ready = await fixture.ready;
    const { token, role } = ready;
    const sessions = {
      analyst: { token },
      visitor: { token: ready.token_without_role },
      stale: { token: ready.token_expired, refreshed: token },
    };
    platform = await startPlatform(ready.url, sessions);
    const url = platform.url;
    step(`server at ${ready.url}, behind the emulated platform front end at ${url}`);
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      // Chromium's sandbox cannot start as root or in most CI containers.
      args: process.getuid?.() === 0 || process.env.CI ? ["--no-sandbox"] : [],
    });
    step(`Chromium ${browser.version()}`);

    // --- 1280 px: the whole conversation ---
    const wide = await newContext(browser, url, { width: 1280, height: 900 }, "analyst");
    const page = await wide.newPage();
    watch(page, problems);
    const response = await page.goto(url, { waitUntil: "load" });
    assert.equal(response.status(), 200);
    const csp = response.headers()["content-security-policy"] || "";
    assert.ok(csp.includes("default-src 'none'") && csp.includes("script-src 'self'"), `strict CSP: ${csp}`);
    await page.locator("#messages li.agent").first().waitFor({ timeout: WAIT });
    step("page loaded, session opened");

    const scan = await ask(page, "scan");
    const rows = await checkTable(page);
    step(`scan: ${rows} activations in the table with verdict and risk badges`);

    // Show KQL: closed at first, open on click, the scan's query inside.
    const kql = scan.locator("details pre");
    assert.equal(await kql.isVisible(), false, "the KQL starts hidden");
    await scan.locator("details summary").click();
    await kql.waitFor({ state: "visible", timeout: WAIT });
    const query = await kql.textContent();
    assert.ok(query.includes("AuditLogs"), `the scan's KQL: ${query}`);
    step("Show KQL reveals the scan's query");

    // The download links: real downloads, the right content.
    await page.locator("#downloads").waitFor({ state: "visible", timeout: WAIT });
    for (const [link, file, check] of [
      ["#dl-md", "pim-report.md", (t) => assert.ok(t.startsWith("# PIM Activity Audit Report"), t.slice(0, 80))],
      ["#dl-json", "pim-report.json", (t) => assert.equal(JSON.parse(t).activations.length, rows)],
    ]) {
      const [download] = await Promise.all([page.waitForEvent("download", { timeout: WAIT }), page.click(link)]);
      assert.equal(download.suggestedFilename(), file);
      const failure = await download.failure();
      assert.equal(failure, null, `downloading ${file}`);
      const saved = join(out, file);
      await download.saveAs(saved);
      check(readFileSync(saved, "utf8"));
    }
    step("both report downloads work");

    // Ask about an activation: the answer names it and lists what it did.
    const who = (await page.locator("#rows tr").nth(1).locator("td").nth(1).textContent()).trim();
    const activity = await ask(page, "what did 2 do");
    const said = await activity.textContent();
    assert.ok(said.includes(who.split("@")[0]), `the answer about #2 (${who}): ${said.slice(0, 200)}`);
    // The table still lists the whole scan, with #2 marked.
    assert.equal(await page.locator("#rows tr").count(), rows, "the scan's table stays");
    assert.deepEqual(await page.locator("#rows tr.focus").evaluateAll((trs) => trs.map((tr) => tr.rowIndex)), [2], "row 2 marked");
    const assessed = await ask(page, "assess them");
    assert.match(await assessed.textContent(), /aligned|partial|no activity|unknown/i);
    step(`"what did 2 do" and "assess them" answered about ${who}`);

    // Chat beside the table at 1280 px, nothing wider than the window.
    const chatBox = await page.locator("#chat").boundingBox();
    const tableBox = await page.locator("#activations").boundingBox();
    assert.ok(tableBox.x > chatBox.x + chatBox.width - 1 && Math.abs(tableBox.y - chatBox.y) < 2, "chat and table side by side");
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "no horizontal scrolling at 1280 px");
    await page.screenshot({ path: join(out, "serve-1280.png"), fullPage: true });
    step(`screenshot ${join(out, "serve-1280.png")}`);

    // A reload keeps the conversation (the session id in sessionStorage, the transcript from
    // GET /api/sessions/{id}).
    const said_before = await page.locator("#messages li").count();
    await page.reload({ waitUntil: "load" });
    await page.waitForFunction((n) => document.querySelectorAll("#messages li").length >= n - 1, said_before, { timeout: WAIT });
    assert.ok((await page.locator("#messages li.user").allTextContents()).includes("what did 2 do"), "the transcript survives a reload");
    step("a reload restores the conversation");
    problems.push(...(await violations(page)).map((v) => `CSP: ${v}`));

    // --- a 390 px phone ---
    const phone = await newContext(browser, url, { width: 390, height: 844 }, "analyst", { isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    const small = await phone.newPage();
    watch(small, problems);
    await small.goto(url, { waitUntil: "load" });
    await small.locator("#messages li.agent").first().waitFor({ timeout: WAIT });
    await ask(small, "scan");
    await checkTable(small);
    await ask(small, "what did 2 do");
    const fits = await small.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      window: window.innerWidth,
      send: document.getElementById("send").getBoundingClientRect().right,
    }));
    assert.ok(fits.page <= fits.window, `no horizontal scrolling on a phone: ${JSON.stringify(fits)}`);
    assert.ok(fits.send <= fits.window, `the Send button is on screen: ${JSON.stringify(fits)}`);
    // The badges are on screen, not scrolled away inside the table.
    const right = await small.locator("#rows .badge[class*='risk-']").evaluateAll((els) => Math.max(...els.map((e) => e.getBoundingClientRect().right)));
    assert.ok(right <= fits.window, `the risk badges are on screen: right edge ${right} of ${fits.window}`);
    const chatSmall = await small.locator("#chat").boundingBox();
    const tableSmall = await small.locator("#activations").boundingBox();
    assert.ok(tableSmall.y >= chatSmall.y + chatSmall.height - 1, "one column on a phone: the table below the chat");
    await small.screenshot({ path: join(out, "serve-390.png"), fullPage: true });
    step(`phone layout; screenshot ${join(out, "serve-390.png")}`);
    problems.push(...(await violations(small)).map((v) => `CSP: ${v}`));

    // --- signed out, and signed in without the app role: the page says what to do ---
    for (const [session, expected] of [
      [null, /sign in/i],
      ["visitor", new RegExp(role.replace(".", "\\."))],
    ]) {
      const context = await newContext(browser, url, { width: 1280, height: 900 }, session);
      const p = await context.newPage();
      await p.goto(url, { waitUntil: "load" });
      const error = p.locator("#messages li.error").first();
      await error.waitFor({ timeout: WAIT });
      assert.match(await error.textContent(), expected);
      await context.close();
    }
    step("signed out and role-less visitors are told what to do");

    // An expired ID token in the token store: the page asks the platform to refresh it
    // (/.auth/refresh) and carries on with the new one.
    {
      const context = await newContext(browser, url, { width: 1280, height: 900 }, "stale");
      const p = await context.newPage();
      // (Its console shows the refused first request: Chromium logs every 401.)
      await p.goto(url, { waitUntil: "load" });
      await p.locator("#messages li.agent").first().waitFor({ timeout: WAIT });
      assert.equal(await p.locator("#messages li.error").count(), 0, "no error after the refresh");
      assert.equal(sessions.stale.refreshes, 1, "one refresh");
      await ask(p, "help");
      problems.push(...(await violations(p)).map((v) => `CSP: ${v}`));
      await context.close();
    }
    step("an expired platform token is refreshed through /.auth/refresh");

    assert.deepEqual(problems, [], "no console errors, uncaught exceptions or CSP violations");
    step("no console errors, uncaught exceptions or CSP violations");
    // Tokens never reach the server's log.
    const leaked = fixture.log.filter((l) => l.includes(token) || l.includes(token.split(".")[2]));
    assert.deepEqual(leaked, [], "the token is not in the server's log");
  } finally {
    if (browser) await browser.close();
    if (platform) platform.server.close();
    fixture.child.stdin.end();
    await new Promise((done) => {
      if (fixture.child.exitCode !== null) return done();
      fixture.child.once("exit", done);
      setTimeout(() => { fixture.child.kill(); done(); }, 10_000);
    });
  }
}

try {
  await main();
  console.log(`browser test passed; screenshots and downloads in ${out}`);
} catch (e) {
  console.error(`browser test FAILED: ${e.stack || e}`);
  if (fixture) console.error(`the server's last log lines:\n${fixture.log.slice(-30).join("\n")}`);
  console.error(`(screenshots so far in ${out})`);
  process.exit(1);
}

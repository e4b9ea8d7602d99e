// Headless Chromium walk of SPID across the three services, as a person would do it:
// Pago in rete "Accedi" -> the IdP's login page -> "Entra con SPID" -> the local SPID
// test IdP -> a test identity with no account yet (one is created) -> Pago in rete
// signed in -> the governance portal without a new login -> Istanze OnLine's
// abilitazione (form, Conferma, Accetto, the CPT from the service's dev outbox, Esci,
// Accedi, fiscal code + CPT: enabled at once because the sign-in was SPID) -> the
// mandatory CPT change -> the Istanze OnLine home -> "Esci" from one service signs out
// all three. Screenshots go to target/browser/. Needs IDP_URL (an `idp-server demo`
// with its three services on the IdP's port +1, +2, +3 and its SPID test IdP) and
// Debian's chromium at /usr/bin/chromium.
import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const base = process.env.IDP_URL ?? 'http://localhost:8080';
const idpPort = Number(new URL(base).port || 80);
const service = (offset) => `${new URL(base).protocol}//${new URL(base).hostname}:${idpPort + offset}`;
const istanze = process.env.ISTANZE_URL ?? service(1);
const pago = process.env.PAGO_URL ?? service(2);
const governance = process.env.GOVERNANCE_URL ?? service(3);
const testIdp = process.env.SPID_TEST_IDP_URL ?? service(10);
const shots = process.env.SCREENSHOT_DIR ?? join(process.cwd(), '..', '..', 'target', 'browser');
mkdirSync(shots, { recursive: true });

// Anna Bianchi of the test IdP: the demo has no account with her fiscal code, so the
// first SPID sign-in creates one.
const who = process.env.SPID_IDENTITY ?? 'Anna Bianchi';

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

async function outboxMailTo(to, subject) {
  for (let i = 0; i < 50; i++) {
    const mails = await (await fetch(`${istanze}/dev/outbox.json`)).json();
    const found = mails.filter((m) => m.to === to && m.subject.includes(subject));
    if (found.length > 0) return found[found.length - 1];
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no mail "${subject}" to ${to} in Istanze OnLine's outbox`);
}

const browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'idp-chromium-')), {
  viewport: { width: 1280, height: 900 },
  locale: 'it-IT',
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run',
  ],
});
const page = browser.pages()[0] ?? (await browser.newPage());
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`${page.url()}: ${m.text()}`); });
const shot = (name) => page.screenshot({ path: join(shots, `spid-${name}.png`), fullPage: true });
const text = async (selector) => (await page.locator(selector).first().textContent()) ?? '';
const signedIn = async () => (await page.locator('#dati-personali').count()) === 1;

try {
  // 1. Pago in rete: not signed in, "Accedi" -> the IdP's login page.
  await page.goto(`${pago}/`);
  check((await page.locator('#accedi').count()) === 1, 'Pago in rete shows "Accedi" when signed out');
  await shot('01-pago-in-rete');
  await page.locator('#accedi').click();
  check(page.url().startsWith(`${base}/authorize?`) && (await page.locator('#username').count()) === 1,
    `"Accedi" leads to the IdP's login page, shown at /authorize (${page.url()})`);
  await shot('02-login');

  // 2. "Entra con SPID" -> the identity provider chooser -> the local test IdP.
  await page.locator('summary.spid-button').click();
  const testIdpLink = page.locator(`a[href^="/spid/login?"]`).first();
  check(await testIdpLink.isVisible(), 'the SPID chooser lists the test identity provider');
  await shot('03-spid-chooser');
  await testIdpLink.click();
  await page.waitForURL((u) => u.href.startsWith(testIdp));
  check(page.url().startsWith(testIdp), `the browser is at the SPID test IdP (${page.url()})`);
  check((await page.textContent('body')).includes('SPID livello 2'), 'the test IdP shows the level asked (L2)');
  const label = page.locator('label', { hasText: who });
  const labelText = (await label.textContent()) ?? '';
  const fiscalCode = labelText.match(/\(([A-Z0-9]{16})\)/)?.[1];
  check(Boolean(fiscalCode), `the test identity ${who} has a fiscal code (${labelText})`);
  await label.click();
  await shot('04-test-idp');
  await page.getByRole('button', { name: 'Entra' }).click();

  // 3. Back at Pago in rete, signed in, with the SPID identity's data.
  await page.waitForURL((u) => u.href.startsWith(pago), { timeout: 15000 });
  check(await signedIn(), 'Pago in rete: signed in after SPID');
  const pagoData = await text('#dati-personali');
  check(pagoData.includes(fiscalCode), `Pago in rete shows the fiscal code ${fiscalCode}`);
  const [given, family] = who.split(' ');
  check(pagoData.includes(given) && pagoData.includes(family), `Pago in rete shows ${who}`);
  check((await text('#user-menu')).includes(who), 'the user menu names the person');
  await shot('05-pago-in-rete-signed-in');

  // 4. The governance portal: signed in without any login.
  await page.goto(`${governance}/accedi`);
  await page.waitForURL((u) => u.href.startsWith(governance) && !u.pathname.startsWith('/callback'));
  check(await signedIn(), 'the governance portal: signed in without a login page');
  check((await text('#dati-personali')).includes(fiscalCode), 'the governance portal shows the same fiscal code');
  await shot('06-governance');

  // 5. Istanze OnLine: "Accedi" -> the abilitazione form (the IdP's enablement hook).
  await page.goto(`${istanze}/accedi`);
  await page.waitForURL((u) => u.href.startsWith(`${istanze}/abilitazione`));
  check((await page.locator('h1').textContent()).includes('Richiesta di abilitazione'), 'Istanze OnLine asks for the abilitazione');
  check((await page.locator('#passi').count()) === 1, 'the step indicator is shown');
  const email = `${given}.${family}@example.org`.toLowerCase();
  const fill = async (lbl, value) => page.getByLabel(lbl, { exact: true }).fill(value);
  await fill('Nome', given);
  await fill('Cognome', family);
  await fill('Codice fiscale', fiscalCode);
  await fill('Indirizzo e-mail', email);
  await fill('Indirizzo', 'Via Dante 12');
  await fill('Paese', 'Italia');
  await fill('Provincia', 'MI');
  await fill('Comune', 'Milano');
  await fill('Telefono cellulare', '3471234567');
  await fill('Telefono fisso (facoltativo)', '');
  await page.getByLabel('Tipo di documento').selectOption({ index: 1 });
  await fill('Numero del documento', 'CA98765BC');
  await fill('Rilasciato da', 'Comune di Milano');
  await fill('Data di rilascio', '2021-03-15');
  check((await page.getByLabel('Domanda', { exact: true }).inputValue()).includes('Cognome da nubile della madre'),
    'the proposed recovery question is filled in');
  await fill('Risposta', 'Colombo');
  await shot('07-abilitazione-form');
  await page.getByRole('button', { name: 'Conferma' }).click();
  check((await page.locator('#avvertenze').count()) === 1, 'Conferma: the summary with the warnings');
  await shot('08-riepilogo');
  await page.getByRole('button', { name: 'Accetto' }).click();
  check((await page.textContent('body')).includes('Ti abbiamo inviato'), 'Accetto: the CPT is on its way');
  await shot('09-inviato');
  const mail = await outboxMailTo(email, '');
  const cpt = mail.body.match(/Codice Personale Temporaneo: (\S+)/)?.[1];
  check(Boolean(cpt), 'the CPT is in the mail in the dev outbox');
  check(mail.attachments?.length === 2, 'the mail carries the modulo di adesione and the modulo di delega');
  await page.getByRole('button', { name: 'Esci' }).click();

  // 6. Accedi again: fiscal code + CPT -> enabled at once (SPID: no school recognition).
  await page.goto(`${istanze}/accedi`);
  await page.waitForURL((u) => u.href.startsWith(`${istanze}/abilitazione`));
  check((await page.locator('#cpt').count()) === 1, 'the next access asks for fiscal code and CPT');
  await fill('Codice fiscale', fiscalCode);
  await fill('Codice Personale Temporaneo', cpt);
  await shot('10-cpt');
  await page.getByRole('button', { name: 'Conferma' }).click();
  await page.waitForURL((u) => u.href.startsWith(istanze) && !u.pathname.startsWith('/abilitazione')
    && !u.pathname.startsWith('/callback'), { timeout: 15000 });
  check((await page.locator('#in-attesa').count()) === 0, 'no wait for a recognition at a school');
  check(page.url().endsWith('/codice-personale'), `the mandatory CPT change comes next (${page.url()})`);
  check((await page.locator('h1').textContent()).includes('Modifica obbligatoria'), 'the change is mandatory');
  await shot('11-cambio-cpt');
  await fill('Codice attuale', cpt);
  await fill('Nuovo codice personale', 'Milano2026x');
  await fill('Ripeti il nuovo codice', 'Milano2026x');
  await page.getByRole('button', { name: 'Conferma' }).first().click();
  check((await page.textContent('body')).includes('Codice personale modificato'), 'the personal code is set');
  await page.goto(`${istanze}/`);
  check(await signedIn(), 'Istanze OnLine: signed in');
  check((await text('#abilitazione')).includes('attiva'), 'the abilitazione is active');
  check((await page.locator('#azioni-istanze').count()) === 1, 'the personal home page of Istanze OnLine');
  check((await text('#dati-personali')).includes(fiscalCode), 'Istanze OnLine shows the same fiscal code');
  await shot('12-istanze-home');

  // 7. "Esci" from Pago in rete: all three are signed out (back-channel logout), and
  // the SPID session at the test IdP ends too (single logout).
  await page.goto(`${pago}/`);
  await page.locator('#user-menu').getByRole('button', { name: 'Esci' }).click();
  await page.waitForURL((u) => u.href.startsWith(pago), { timeout: 15000 });
  check((await page.locator('#accedi').count()) === 1, 'Pago in rete: signed out');
  await shot('13-signed-out');
  for (const [name, url] of [['Istanze OnLine', istanze], ['the governance portal', governance]]) {
    let out = false;
    for (let i = 0; i < 30 && !out; i++) {
      await page.goto(`${url}/`);
      out = (await page.locator('#accedi').count()) === 1 && !(await signedIn());
      if (!out) await new Promise((r) => setTimeout(r, 200));
    }
    check(out, `${name}: signed out too`);
  }
  await page.goto(`${pago}/accedi`);
  check(page.url().startsWith(`${base}/authorize?`) && (await page.locator('#username').count()) === 1,
    'a new "Accedi" asks to sign in again');

  // Bootstrap Italia's CSS embeds data: fonts that our CSP blocks, and the browser asks
  // for a favicon we do not serve: known, harmless; anything else (a CSP refusal of a
  // script, a form target or a style) fails the walk.
  const unexpected = consoleErrors.filter((e) => !e.includes("Loading the font 'data:") && !e.includes('404'));
  check(unexpected.length === 0, `no unexpected console errors (${unexpected.join(' | ')})`);
} catch (e) {
  await shot('failure');
  console.error(e);
  console.error(`at ${page.url()}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

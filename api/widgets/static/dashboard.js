"use strict";
// The insights dashboard: the widgets of widgets.js under one page, for a person with a
// read-scope API key (kept in sessionStorage: this tab only, gone when it closes).
(function (window) {
  const document = window.document;
  const JG = window.JG;
  JG.state.root = "widgets/";
  const drawn = new Set();

  const $ = (selector) => document.querySelector(selector);
  const slot = (name) => $('[data-widget-slot="' + name + '"]');
  const formParams = (form) => Object.fromEntries(
    [...new window.FormData(form).entries()].filter(([, value]) => value !== ""));

  function showCustomer(id) {
    $('[data-form="customer"] [name="customer_id"]').value = id;
    select("customer");
    JG.mount(slot("customer-timeline"), "customer-timeline", { customer_id: id });
  }

  function drawJourneys() {
    const params = formParams($('[data-form="journeys"]'));
    JG.mount(slot("sankey"), "sankey", params, { onCustomer: showCustomer }).then(() => {
      remember(slot("sankey"));
    });
    JG.mount(slot("journey-table"), "journey-table", params, { onCustomer: showCustomer });
  }

  // Offer the event types seen so far as suggestions for the anchor.
  function remember() {
    const known = new Set([...document.querySelectorAll("#events option")].map((o) => o.value));
    for (const node of document.querySelectorAll('[data-widget-slot="sankey"] .node-label')) {
      known.add(node.textContent.replaceAll(" ", "_"));
    }
    $("#events").replaceChildren(...[...known].sort().map((value) => {
      const option = document.createElement("option");
      option.value = value;
      return option;
    }));
  }

  async function drawKpis() {
    const tiles = $('[data-role="tiles"]');
    tiles.replaceChildren();
    let catalog;
    try {
      const response = await window.fetch("api/v1/kpis", {
        headers: { "X-API-Key": window.sessionStorage.getItem(JG.KEY) },
      });
      catalog = await response.json();
      if (!response.ok) throw new Error(catalog.error.message);
    } catch (error) {
      tiles.textContent = "Could not load the KPI catalog: " + error.message;
      return;
    }
    for (const kpi of catalog.kpis) {
      // Funnels and milestone KPIs need parameters: see the Funnel tab.
      if (Object.values(kpi.parameters).some((p) => p.required)) continue;
      const tile = document.createElement("div");
      tile.className = "tile";
      tiles.append(tile);
      JG.mount(tile, "kpi-tile", { kpi: kpi.name, grain: "week" });
    }
  }

  const DRAW = {
    journeys: drawJourneys,
    kpis: drawKpis,
    funnel: () => JG.mount(slot("funnel"), "funnel", formParams($('[data-form="funnel"]'))),
    customer: () => {},
    cells: () => JG.mount(slot("cell-heatmap"), "cell-heatmap", {}),
  };

  function select(tab) {
    for (const button of document.querySelectorAll("[data-tab]")) {
      button.setAttribute("aria-selected", String(button.dataset.tab === tab));
    }
    for (const panel of document.querySelectorAll("[data-panel]")) {
      panel.hidden = panel.dataset.panel !== tab;
    }
    if (!drawn.has(tab)) {
      drawn.add(tab);
      DRAW[tab]();
    }
  }

  async function signIn(key) {
    const response = await window.fetch("api/v1/kpis", { headers: { "X-API-Key": key } });
    if (response.ok) return null;
    const body = await response.json().catch(() => null);
    return body && body.error ? body.error.message : "HTTP " + response.status;
  }

  function open() {
    $("form.login").hidden = true;
    $("nav").hidden = false;
    $(".who").textContent = "signed in with key "
      + window.sessionStorage.getItem(JG.KEY).split("_")[1];
    select("journeys");
  }

  function start() {
    for (const button of document.querySelectorAll("[data-tab]")) {
      button.addEventListener("click", () => select(button.dataset.tab));
    }
    const forms = { journeys: drawJourneys, funnel: DRAW.funnel,
      customer: () => showCustomer(formParams($('[data-form="customer"]')).customer_id) };
    for (const [name, draw] of Object.entries(forms)) {
      $('[data-form="' + name + '"]').addEventListener("submit", (event) => {
        event.preventDefault();
        draw();
      });
    }
    const login = $("form.login");
    login.addEventListener("submit", async (event) => {
      event.preventDefault();
      const key = login.elements.key.value.trim();
      const problem = await signIn(key);
      if (problem) {
        login.querySelector(".error").textContent = "That key was refused: " + problem;
        return;
      }
      window.sessionStorage.setItem(JG.KEY, key);
      open();
    });
    if (window.sessionStorage.getItem(JG.KEY)) open();
    else login.hidden = false;
  }

  document.addEventListener("DOMContentLoaded", start);
})(window);

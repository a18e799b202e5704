"use strict";
// journeygraph widgets: one drawing function per widget, shared by the widget pages
// (/widgets/<name>, usually in an iframe with an embed token) and the dashboard (a
// person's API key in sessionStorage). No build step: plain script, plotly.js beside it.
(function (window) {
  const document = window.document;
  const KEY = "journeygraph.apiKey";
  // Where /widgets/ is, relative to the page: "" on a widget page, "widgets/" on the
  // dashboard. Relative URLs keep the widgets working wherever the app is mounted.
  const state = { root: "", token: null };

  function credentials() {
    if (state.token) return { Authorization: "Bearer " + state.token };
    const key = window.sessionStorage.getItem(KEY);
    return key ? { "X-API-Key": key } : null;
  }

  function queryString(params) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") query.set(name, value);
    }
    const text = query.toString();
    return text ? "?" + text : "";
  }

  // GET a widget's JSON; a refusal becomes an Error carrying the API's own message.
  async function getJson(widget, path, params) {
    const headers = credentials();
    if (!headers) {
      throw new Error("this view needs an embed token (?token=...) or an API key "
        + "(open the dashboard and enter one)");
    }
    const url = state.root + widget + "/" + path + queryString(params);
    const response = await window.fetch(url, {
      headers: Object.assign({ Accept: "application/json" }, headers),
    });
    let body = null;
    try {
      body = await response.json();
    } catch (ignored) {
      body = null;
    }
    if (!response.ok) {
      const problem = body && body.error ? body.error.message : response.statusText;
      throw new Error(problem + " (HTTP " + response.status + ")");
    }
    return body;
  }

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === "onclick") node.addEventListener("click", value);
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof window.Node ? child : String(child));
    }
    return node;
  }

  function note(target, text, kind) {
    target.append(el("p", { class: "note " + (kind || ""), role: "status" }, text));
  }

  const number = new Intl.NumberFormat("en-GB");
  function count(value) {
    return number.format(value);
  }
  function percent(share) {
    return (100 * share).toFixed(1) + "%";
  }
  function when(iso) {
    return iso ? iso.replace("T", " ").slice(0, 16) : "";
  }
  function words(name) {
    return String(name).replaceAll("_", " ");
  }

  function plot(chart, figure) {
    return window.Plotly.newPlot(chart, figure.data, figure.layout,
      { responsive: true, displayModeBar: false });
  }

  // --- journeys: Sankey and table, with drill-down to customers ----------------------

  // Nodes are (step, event type); links carry the journeys from one step to the next.
  function sankeyFigure(result) {
    const nodes = [];
    const index = new Map();
    function node(step, event) {
      const key = step + "\u0000" + event;
      if (!index.has(key)) {
        index.set(key, nodes.length);
        nodes.push({ step, event });
      }
      return index.get(key);
    }
    const links = result.links.map((link) => ({
      source: node(link.step, link.source),
      target: node(link.step + 1, link.target),
      value: link.count,
      seconds: link.median_seconds,
    }));
    const hours = (s) => (s === null ? "n/a" : (s / 3600).toFixed(1) + " h");
    return {
      nodes,
      data: [{
        type: "sankey",
        arrangement: "fixed", // no dragging: a click on a step is a drill-down
        node: {
          label: nodes.map((n) => words(n.event)),
          customdata: nodes.map((n) => "step " + n.step),
          hovertemplate: "%{label}<br>%{customdata}<br>%{value} journeys<extra></extra>",
          pad: 14,
          thickness: 16,
        },
        link: {
          source: links.map((l) => l.source),
          target: links.map((l) => l.target),
          value: links.map((l) => l.value),
          customdata: links.map((l) => hours(l.seconds)),
          hovertemplate: "%{source.label} → %{target.label}<br>%{value} journeys"
            + "<br>median gap %{customdata}<extra></extra>",
        },
      }],
      layout: { margin: { t: 10, l: 10, r: 10, b: 10 }, font: { size: 12 } },
    };
  }

  async function drill(detail, widget, params, which, options) {
    detail.replaceChildren(el("p", { class: "note" }, "Loading customers…"));
    let list;
    try {
      list = await getJson(widget, "customers", Object.assign({}, params, which, { limit: 50 }));
    } catch (error) {
      detail.replaceChildren();
      note(detail, "Could not list customers: " + error.message, "error");
      return;
    }
    const what = which.journey ? which.journey.split(">").map(words).join(" → ")
      : "step " + which.step + ": " + words(which.event_type)
        + (which.target ? " → " + words(which.target) : "");
    const items = list.customers.map((id) => el("li", {},
      options.onCustomer
        ? el("button", { type: "button", class: "link", onclick: () => options.onCustomer(id) }, id)
        : id));
    detail.replaceChildren(
      el("h3", {}, count(list.total) + " customers — " + what),
      el("ul", { class: "customers", "data-role": "customers" }, ...items),
      list.total > list.customers.length
        ? el("p", { class: "note" }, "showing the first " + list.customers.length) : null);
  }

  async function sankey(target, params, options) {
    const result = await getJson("sankey", "data", params);
    if (!result.links.length) {
      note(target, "No journeys " + (params.direction === "end" ? "to " : "from ")
        + words(params.anchor || "this event") + " yet.");
      return;
    }
    const chart = el("div", { class: "chart", "data-role": "chart" });
    const detail = el("div", { class: "drill", "data-role": "drill" });
    target.append(
      el("p", { class: "summary" }, count(result.total_journeys) + " journeys of "
        + count(result.total_customers) + " customers. Click a step or a link for its customers."),
      chart, detail);
    const figure = sankeyFigure(result);
    await plot(chart, figure);
    chart.on("plotly_click", (event) => {
      const point = event.points[0];
      if (point.source && typeof point.source === "object") {
        const from = figure.nodes[point.source.pointNumber ?? point.source.index];
        const to = figure.nodes[point.target.pointNumber ?? point.target.index];
        drill(detail, "sankey", params,
          { step: from.step, event_type: from.event, target: to.event }, options);
      } else {
        const node = figure.nodes[point.pointNumber ?? point.index];
        drill(detail, "sankey", params, { step: node.step, event_type: node.event }, options);
      }
    });
  }

  async function journeyTable(target, params, options) {
    const result = await getJson("journey-table", "data", params);
    if (!result.journeys.length) {
      note(target, "No journeys from " + words(params.anchor || "this event") + " yet.");
      return;
    }
    const detail = el("div", { class: "drill", "data-role": "drill" });
    const rows = result.journeys.map((journey, rank) => el("tr", {
      tabindex: "0",
      onclick: () => drill(detail, "journey-table", params,
        { journey: journey.steps.join(">") }, options),
    },
    el("td", { class: "num" }, rank + 1),
    el("td", {}, journey.steps.map(words).join(" → ")),
    el("td", { class: "num" }, count(journey.count)),
    el("td", { class: "num" }, count(journey.customers)),
    el("td", { class: "num" }, percent(journey.share))));
    rows.push(el("tr", { class: "other" }, el("td", {}, ""),
      el("td", {}, "all other journeys (" + count(result.other.journeys) + ")"),
      el("td", { class: "num" }, count(result.other.count)),
      el("td", { class: "num" }, count(result.other.customers)),
      el("td", { class: "num" }, percent(result.other.share))));
    target.append(el("table", { class: "journeys", "data-role": "table" },
      el("thead", {}, el("tr", {}, ...["#", "journey", "journeys", "customers", "share"]
        .map((h) => el("th", {}, h)))),
      el("tbody", {}, ...rows)), detail);
  }

  // --- KPIs ---------------------------------------------------------------------------

  function kpiValue(value, unit) {
    if (value === null || value === undefined) return "n/a";
    if (unit === "share") return percent(value);
    if (Math.abs(value) >= 100) return count(Math.round(value));
    return value.toFixed(2).replace(/\.?0+$/, "") + (unit && unit !== "count" ? " " + unit : "");
  }

  // The latest value and the trend; a KPI by dimension (channel, journey) shows the
  // latest period's top values and the trend of the first.
  async function kpiTile(target, params) {
    const result = await getJson("kpi-tile", "data", params);
    const rows = result.rows.filter((row) => row.segment === null)
      .sort((a, b) => String(a.period).localeCompare(String(b.period)));
    target.append(el("h3", { title: result.description }, result.title));
    if (!rows.length) {
      note(target, "No data for this KPI yet.");
      return;
    }
    const latestPeriod = rows[rows.length - 1].period;
    const current = rows.filter((row) => row.period === latestPeriod)
      .sort((a, b) => (b.value ?? -Infinity) - (a.value ?? -Infinity));
    const lead = current[0];
    const series = rows.filter((row) => row.dimension === lead.dimension);
    const before = series.length > 1 ? series[series.length - 2] : null;
    const change = before && lead.value !== null && before.value !== null
      ? lead.value - before.value : null;
    target.append(
      el("p", { class: "kpi-value", "data-role": "value" }, kpiValue(lead.value, result.unit)),
      el("p", { class: "kpi-sub" }, (lead.dimension ? words(lead.dimension) + " · " : "")
        + (latestPeriod ? result.grain + " of " + latestPeriod : "")
        + (change === null ? "" : " · " + (change >= 0 ? "▲ " : "▼ ")
          + kpiValue(Math.abs(change), result.unit) + " on the " + result.grain + " before")));
    if (current.length > 1) {
      target.append(el("p", { class: "kpi-sub" }, current.slice(1, 4)
        .map((row) => words(row.dimension) + " " + kpiValue(row.value, result.unit)).join(" · ")));
    }
    if (series.length > 1) {
      const chart = el("div", { class: "spark", "data-role": "chart" });
      target.append(chart);
      await plot(chart, {
        data: [{ type: "scatter", mode: "lines", x: series.map((r) => r.period),
          y: series.map((r) => r.value), line: { width: 2, color: "#2166ac" },
          hovertemplate: "%{x}: %{y}<extra></extra>" }],
        layout: { margin: { t: 4, l: 30, r: 4, b: 20 }, height: 90,
          xaxis: { showgrid: false, tickfont: { size: 9 } },
          yaxis: { showgrid: false, tickfont: { size: 9 } } },
      });
    }
  }

  async function funnel(target, params) {
    const result = await getJson("funnel", "data", params);
    const rows = result.rows.filter((row) => row.step !== null)
      .sort((a, b) => a.step - b.step);
    if (!rows.length || !rows[0].denominator) {
      note(target, "No customer has entered this funnel yet.");
      return;
    }
    const chart = el("div", { class: "chart", "data-role": "chart" });
    target.append(el("p", { class: "summary" }, count(rows[0].denominator)
      + " customers entered; each bar is who reached the step within "
      + result.parameters.window_days + " days."), chart);
    await plot(chart, {
      data: [{ type: "funnel", y: rows.map((r) => words(r.dimension)),
        x: rows.map((r) => r.numerator),
        text: rows.map((r) => (r.value === null ? "" : percent(r.value) + " of the step before")),
        textinfo: "value+text", marker: { color: "#2166ac" } }],
      layout: { margin: { t: 10, l: 160, r: 10, b: 30 } },
    });
  }

  // --- customer 360 -------------------------------------------------------------------

  async function customerTimeline(target, params) {
    const view = await getJson("customer-timeline", "data", params);
    const name = [view.properties.first_name, view.properties.last_name].filter(Boolean).join(" ");
    const scores = Object.entries(view.scores).map(([task, score]) => el("span",
      { class: "chip", title: "model " + (score.model_version || "") },
      task + " " + (typeof score.score === "number" ? score.score.toFixed(3) : score.score)));
    const chart = el("div", { class: "chart", "data-role": "chart" });
    const table = (headings, rows) => el("table", {},
      el("thead", {}, el("tr", {}, ...headings.map((h) => el("th", {}, h)))),
      el("tbody", {}, ...rows));
    target.append(
      el("h3", {}, view.customer_id + (name ? " — " + name : "")),
      el("p", { class: "summary" }, count(view.touchpoints_total) + " touchpoints, "
        + view.identifiers.length + " identifiers, " + view.milestones.length + " milestones"),
      scores.length ? el("p", { class: "chips", "data-role": "scores" }, ...scores)
        : el("p", { class: "note" }, "No propensity scores yet (journeygraph score TASK)."),
      chart,
      el("div", { class: "columns" },
        el("section", {}, el("h4", {}, "Identifiers and how they were linked"),
          table(["kind", "value", "method", "rule", "score"], view.identifiers.map((i) =>
            el("tr", {}, el("td", {}, i.kind), el("td", {}, i.value),
              el("td", {}, i.link.method || ""), el("td", {}, i.link.rule || ""),
              el("td", { class: "num" }, i.link.score ?? ""))))),
        el("section", {}, el("h4", {}, "Milestones"),
          view.milestones.length
            ? table(["milestone", "reached"], view.milestones.map((m) =>
              el("tr", { title: m.description }, el("td", {}, words(m.milestone)),
                el("td", {}, when(m.reached_at)))))
            : el("p", { class: "note" }, "None reached yet."))));
    if (!view.touchpoints.length) {
      note(chart, "No touchpoints yet.");
      return;
    }
    const points = view.touchpoints;
    await plot(chart, {
      data: [{ type: "scatter", mode: "markers", x: points.map((t) => t.ts),
        y: points.map((t) => t.channel || "unknown"), text: points.map((t) => words(t.event_type)),
        customdata: points.map((t) => t.source || ""),
        marker: { size: 9, color: "#2166ac", opacity: 0.8 },
        hovertemplate: "%{text}<br>%{x}<br>%{y} via %{customdata}<extra></extra>" }],
      layout: { margin: { t: 10, l: 90, r: 10, b: 40 }, height: 260,
        yaxis: { type: "category" } },
    });
  }

  // --- cells --------------------------------------------------------------------------

  const RED_TO_BLUE = [[0, "#b2182b"], [0.25, "#ef8a62"], [0.5, "#f7f7f7"],
    [0.75, "#67a9cf"], [1, "#2166ac"]];
  const ROOT = "\u0000cells";

  function sentimentChange(cell) {
    return cell.sentiment_change === null ? "no answers yet"
      : (cell.sentiment_change > 0 ? "+" : "") + cell.sentiment_change.toFixed(3);
  }

  // Size = subscribers with incidents on the cell; colour = sentiment change, red worse.
  function cellFigure(report) {
    const cells = report.cells;
    const changes = cells.map((cell) => cell.sentiment_change ?? 0);
    const reach = Math.max(0.01, ...changes.map(Math.abs));
    return {
      data: [{
        type: "treemap",
        ids: [ROOT, ...cells.map((cell) => "cell:" + cell.cell_id)],
        labels: ["all cells", ...cells.map((cell) => cell.cell_id)],
        parents: ["", ...cells.map(() => ROOT)],
        values: [0, ...cells.map((cell) => cell.subscribers)],
        branchvalues: "remainder",
        customdata: [["", "", "", ""], ...cells.map((cell) => [
          cell.rank, cell.incidents, cell.answers, sentimentChange(cell)])],
        marker: {
          colors: [0, ...changes],
          colorscale: RED_TO_BLUE,
          cmin: -reach, // symmetric about 0, so no change is the scale's neutral middle
          cmax: reach,
          showscale: true,
          colorbar: { title: { text: "sentiment change" } },
        },
        textinfo: "label+value",
        hovertemplate: "<b>%{label}</b><br>rank %{customdata[0]}<br>"
          + "%{value} subscribers with incidents<br>%{customdata[1]} incidents<br>"
          + "%{customdata[2]} answers<br>sentiment change %{customdata[3]}<extra></extra>",
      }],
      layout: { margin: { t: 10, l: 10, r: 10, b: 10 } },
    };
  }

  async function cellHeatmap(target, params) {
    const report = await getJson("cell-heatmap", "data", params);
    const period = report.start.slice(0, 10) + " to " + report.end.slice(0, 10);
    if (!report.cells.length) {
      note(target, "No cell incidents between " + report.start.slice(0, 10) + " and "
        + report.end.slice(0, 10) + " yet. Cells appear here once the engagement engine "
        + "has recorded incidents on them.");
      return;
    }
    const chart = el("div", { class: "chart", "data-role": "chart" });
    target.append(el("p", { class: "summary" }, "Top " + report.cells.length + " of "
      + report.cells_total + " cells, " + period + ". Size: subscribers with incidents. "
      + "Colour: sentiment change (red = worse)."), chart);
    await plot(chart, cellFigure(report));
  }

  const WIDGETS = {
    "sankey": sankey,
    "journey-table": journeyTable,
    "kpi-tile": kpiTile,
    "funnel": funnel,
    "customer-timeline": customerTimeline,
    "cell-heatmap": cellHeatmap,
  };

  // Draw widget `name` into `target`; data-state says "ready" or "error" when done.
  async function mount(target, name, params, options) {
    target.replaceChildren();
    target.dataset.state = "loading";
    try {
      if (!window.Plotly) throw new Error("plotly.js did not load from static/plotly.min.js");
      await WIDGETS[name](target, params || {}, options || {});
      target.dataset.state = "ready";
    } catch (error) {
      target.replaceChildren();
      note(target, "Could not load " + words(name) + ": " + error.message, "error");
      target.dataset.state = "error";
    }
  }

  // A widget page: the widget named by the page, with the URL's parameters.
  function mountPage() {
    const target = document.querySelector("[data-widget]");
    if (!target) return;
    const params = Object.fromEntries(new URLSearchParams(window.location.search));
    state.token = params.token || null;
    delete params.token;
    mount(target, target.dataset.widget, params, {});
  }

  window.JG = { KEY, state, mount, getJson, figures: { sankeyFigure, cellFigure } };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mountPage);
  } else {
    mountPage();
  }
})(window);

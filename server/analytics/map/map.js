// The journey map: the designed journey laid out by dagre (vendor/dagre.min.js) and drawn as SVG,
// with the figures of GetJourneyStats on it. Reads its settings from the JSON in
// <script id="journeyman-map">: {data, statsUrl, refreshS}. With a statsUrl it polls it; without,
// it draws `data` once (a map written by `journeyman map`). Text goes in with textContent only.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const NODE_W = 180, NODE_H = 84;
  const config = JSON.parse(document.getElementById("journeyman-map").textContent);

  function n(value) { return Number(value || 0); }
  function plural(count, one, many) { return count.toLocaleString("en") + " " + (count === 1 ? one : many); }
  function percent(share) { return (100 * share).toFixed(share < 0.1 ? 1 : 0) + " %"; }
  function duration(seconds) {
    const units = [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];
    for (const [size, unit] of units) {
      if (seconds >= size) { return (seconds / size).toFixed(seconds / size < 10 ? 1 : 0) + " " + unit; }
    }
    return seconds.toFixed(1) + " s";
  }
  function el(name, attributes, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes || {})) { node.setAttribute(key, value); }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function html(name, attributes, text) {
    const node = document.createElement(name);
    for (const [key, value] of Object.entries(attributes || {})) { node.setAttribute(key, value); }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  // Friction heat of a stage, 0 (every event at the lowest level) to 1 (every one at the highest).
  function heat(stage, levels) {
    let events = 0, weighted = 0;
    for (const count of stage.friction_levels || []) {
      const index = levels.indexOf(count.level);
      events += n(count.events);
      weighted += n(count.events) * Math.max(0, index);
    }
    return events && levels.length > 1 ? weighted / (events * (levels.length - 1)) : null;
  }
  function heatColour(value) {
    if (value === null) { return "#eceff1"; }
    const hue = 120 * (1 - Math.min(1, value * 2));  // green to red; half the way is already red
    return "hsl(" + hue.toFixed(0) + ", 70%, 78%)";
  }

  function edgeLabel(edge, live) {
    if (!live) { return edge.transition; }
    const customers = n(edge.customers);
    if (!customers) { return edge.transition + " · never taken"; }
    const share = edge.share === undefined ? "" : " (" + percent(edge.share) + ")";
    return edge.transition + " · " + customers.toLocaleString("en") + share;
  }

  function layout(data, live) {
    const graph = new dagre.graphlib.Graph({ multigraph: true });
    graph.setGraph({ rankdir: "LR", nodesep: 30, ranksep: 40, edgesep: 14, marginx: 16, marginy: 16 });
    graph.setDefaultEdgeLabel(function () { return {}; });
    for (const stage of data.stages) { graph.setNode(stage.stage, { width: NODE_W, height: NODE_H }); }
    data.transitions.forEach(function (edge, index) {
      const text = edgeLabel(edge, live);
      graph.setEdge(edge.from_stage, edge.to_stage,
        { width: 6 * text.length, height: 16, labelpos: "c", text: text, edge: edge }, "e" + index);
    });
    dagre.layout(graph);
    return graph;
  }

  function drawGraph(data, live) {
    const graph = layout(data, live);
    const size = graph.graph();
    const svg = el("svg", { id: "graph", width: size.width, height: size.height,
      style: "max-width: 100%; height: auto;",
      viewBox: "0 0 " + size.width + " " + size.height, role: "img",
      "aria-label": "journey " + data.journey });
    const defs = el("defs");
    const arrow = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" });
    arrow.appendChild(el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#546e7a" }));
    defs.appendChild(arrow);
    svg.appendChild(defs);
    const most = Math.max(1, ...data.transitions.map(function (e) { return n(e.customers); }));
    for (const id of graph.edges()) {
      const label = graph.edge(id);
      const edge = label.edge;
      const customers = n(edge.customers);
      const never = live && !customers;
      const group = el("g", { class: "transition" + (never ? " never-taken" : ""),
        "data-transition": edge.transition, "data-from": edge.from_stage, "data-to": edge.to_stage,
        "data-customers": customers });
      const points = label.points.map(function (p) { return p.x.toFixed(1) + "," + p.y.toFixed(1); });
      const width = live && customers ? 1.5 + 10 * Math.sqrt(customers / most) : 1.5;
      group.appendChild(el("polyline", { points: points.join(" "), fill: "none",
        "stroke-width": width.toFixed(1), "marker-end": "url(#arrow)" }));
      group.appendChild(el("text", { x: label.x, y: label.y - width / 2 - 3, "text-anchor": "middle",
        class: "edge-label" }, label.text));
      svg.appendChild(group);
    }
    for (const stage of data.stages) {
      const place = graph.node(stage.stage);
      const x = place.x - NODE_W / 2, y = place.y - NODE_H / 2;
      const group = el("g", { class: "stage", "data-stage": stage.stage,
        "data-customers": n(stage.customers), "data-stalled": n(stage.stalled) });
      group.appendChild(el("rect", { x: x, y: y, width: NODE_W, height: NODE_H, rx: 8,
        fill: heatColour(live ? heat(stage, data.friction_levels) : null) }));
      group.appendChild(el("text", { x: place.x, y: y + 20, class: "stage-label",
        "text-anchor": "middle" }, stage.label || stage.stage));
      if (live) {
        group.appendChild(el("text", { x: place.x, y: y + 42, class: "customers",
          "text-anchor": "middle" }, plural(n(stage.customers), "customer", "customers")));
        group.appendChild(el("text", { x: place.x, y: y + 60, class: "stalled",
          "text-anchor": "middle" }, plural(n(stage.stalled), "stalled", "stalled")));
        const top = (stage.actions || []).slice(0, 2).map(function (a) { return a.action; });
        group.appendChild(el("text", { x: place.x, y: y + 76, class: "top-actions",
          "text-anchor": "middle" }, top.length ? "→ " + top.join(", ") : ""));
      } else {
        group.appendChild(el("text", { x: place.x, y: y + 44, class: "stage-id",
          "text-anchor": "middle" }, stage.stage));
      }
      svg.appendChild(group);
    }
    return svg;
  }

  function drawBand(data) {
    const band = html("div", { id: "friction-band", class: "band" });
    for (const stage of data.stages) {
      const value = heat(stage, data.friction_levels);
      const cell = html("div", { class: "band-cell", "data-stage": stage.stage });
      cell.style.background = heatColour(value);
      cell.appendChild(html("span", { class: "band-stage" }, stage.label || stage.stage));
      const top = data.friction_levels.length ? data.friction_levels[data.friction_levels.length - 1] : "";
      const high = (stage.friction_levels || []).find(function (c) { return c.level === top; });
      const events = (stage.friction_levels || []).reduce(function (s, c) { return s + n(c.events); }, 0);
      const text = events ? percent(n(high && high.events) / events) + " of events at " + top : "no events";
      cell.appendChild(html("span", { class: "band-figure" }, text));
      band.appendChild(cell);
    }
    return band;
  }

  function row(cells, header) {
    const tr = html("tr");
    for (const cell of cells) { tr.appendChild(html(header ? "th" : "td", {}, cell)); }
    return tr;
  }

  function drawStageTable(data) {
    const table = html("table", { id: "stages" });
    table.appendChild(row(["stage", "customers", "stalled", "entered", "left", "time in stage (median / p90)",
      "friction signals", "actions offered / held out", "goal conversions"], true));
    for (const stage of data.stages) {
      const time = stage.time_in_stage_median_s === undefined ? "–"
        : duration(stage.time_in_stage_median_s) + " / " + duration(stage.time_in_stage_p90_s)
          + " (" + n(stage.time_in_stage_samples).toLocaleString("en") + ")";
      const signals = (stage.friction_signals || []).slice(0, 3)
        .map(function (s) { return s.signal + " at " + s.touchpoint + ": " + n(s.fired); }).join("; ");
      const actions = (stage.actions || []).slice(0, 3)
        .map(function (a) { return a.action + ": " + n(a.offered) + " / " + n(a.held_out); }).join("; ");
      const goals = (stage.conversions || []).map(function (g) { return g.goal + ": " + n(g.conversions); }).join("; ");
      const tr = row([stage.label || stage.stage, n(stage.customers).toLocaleString("en"),
        n(stage.stalled).toLocaleString("en"), n(stage.entries).toLocaleString("en"),
        n(stage.exits).toLocaleString("en"), time, signals || "–", actions || "–", goals || "–"]);
      tr.setAttribute("data-stage", stage.stage);
      table.appendChild(tr);
    }
    return table;
  }

  function drawTransitionTable(data, live) {
    const table = html("table", { id: "transitions" });
    table.appendChild(row(["transition", "from", "to", "customers", "share of the from-stage", "line"], true));
    for (const edge of data.transitions) {
      const customers = n(edge.customers);
      const tr = row([edge.transition, edge.from_stage, edge.to_stage,
        !live ? "–" : customers ? customers.toLocaleString("en") : "never taken",
        edge.share === undefined ? "–" : percent(edge.share), String(edge.line)]);
      tr.setAttribute("data-transition", edge.transition);
      tr.setAttribute("data-from", edge.from_stage);
      table.appendChild(tr);
    }
    return table;
  }

  function render(data, live, note) {
    document.title = data.journey + " · journeyman map";
    document.getElementById("journey").textContent = data.journey;
    document.getElementById("description").textContent = data.description || "";
    const stall = duration(n(data.stall_after_ms) / 1000);
    document.getElementById("status").textContent = live
      ? "Days " + data.since + " to " + data.until + " (UTC); customers and stalled (no event for "
        + stall + ") as of " + new Date(n(data.as_of_ms)).toISOString().slice(0, 19) + "Z. " + note
      : "The designed journey (" + data.ruleset_version + "): no live figures. " + note;
    const main = document.getElementById("map");
    main.replaceChildren(drawGraph(data, live));
    const band = document.getElementById("band");
    band.replaceChildren(...(live ? [html("h2", {}, "Friction along the journey"), drawBand(data)] : []));
    const tables = document.getElementById("tables");
    tables.replaceChildren(...(live ? [drawStageTable(data)] : []), drawTransitionTable(data, live));
    showRefused(data.refused_reload);
    document.body.setAttribute("data-rendered", live ? "live" : "designed");
  }

  // The last rules change the service refused: still in force is the ruleset drawn here.
  function showRefused(refused) {
    const box = document.getElementById("refused");
    if (!refused) { box.hidden = true; box.replaceChildren(); return; }
    const when = new Date(n(refused.at_ms)).toISOString().slice(0, 16).replace("T", " ");
    box.replaceChildren(
      html("strong", {}, "Your last rules change was refused (" + when + " UTC); the rules in "
        + "force are still the ones drawn here. Fix these and save again:"),
      html("pre", {}, refused.reason));
    box.hidden = false;
  }

  function isLive(data) { return Boolean(data && data.as_of_ms && n(data.as_of_ms) > 0); }

  async function poll() {
    try {
      const reply = await fetch(config.statsUrl, { credentials: "same-origin", cache: "no-store" });
      if (!reply.ok) { throw new Error(reply.status + " " + (await reply.text())); }
      const data = await reply.json();
      render(data, true, "Refreshes every " + config.refreshS + " s.");
    } catch (error) {
      document.getElementById("status").textContent = "Could not read the figures: " + error.message;
    }
    setTimeout(poll, 1000 * config.refreshS);
  }

  if (config.data) { render(config.data, isLive(config.data), config.note || ""); }
  if (config.statsUrl) { poll(); }
})();

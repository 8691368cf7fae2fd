/* sotalab dashboard: one page, two doors.
 *
 * - In a browser (served by `sotalab serve --http` at /ui/), data comes from the
 *   server's read-only JSON API: POST /ui/api/<tool> runs that lab tool.
 * - Inside an MCP host (an MCP App, loaded in the host's sandboxed iframe), the host
 *   sends the result of the tool that opened it (campaign_view) and the page calls
 *   further tools through the host with JSON-RPC over postMessage (the MCP Apps
 *   protocol: ui/initialize, ui/notifications/tool-result, tools/call).
 *
 * Everything shown comes from the lab, and much of it is untrusted text (hypotheses,
 * logs, diffs, paper cells): it only ever enters the page as textContent or SVG text
 * nodes, never as markup. Views update by polling while the page is visible.
 */
"use strict";
(() => {
  const IN_APP = window.parent !== window;
  const POLL_MS = 3000;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const LABEL_CLASSES = { keep: "label-keep", discard: "label-discard", disqualified: "label-disqualified" };
  const VERDICT_MARKS = { valid: "\u2713", invalid: "\u2717", inconclusive: "?" };

  // ------------------------------------------------------------------ transport

  let nextId = 0;
  const pending = new Map();
  let appResult = null;          // the tool result the host sent (app door)
  let appReady = null;

  function rpc(method, params) {
    const id = ++nextId;
    window.parent.postMessage({ jsonrpc: "2.0", id, method, params }, "*");
    return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
  }

  function onHostMessage(event) {
    if (event.source !== window.parent) return;
    const msg = event.data;
    if (!msg || msg.jsonrpc !== "2.0") return;
    if (msg.method === undefined && pending.has(msg.id)) {
      const { resolve, reject } = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) reject(new Error(msg.error.message || "host error"));
      else resolve(msg.result);
    } else if (msg.method === "ui/notifications/tool-result") {
      appResult = msg.params || {};
      const data = resultData(appResult);
      if (data && typeof data.id === "number" && Array.isArray(data.trials)) {
        state.appRoute = state.route = `campaign/${data.id}`;
        state.lastJson = JSON.stringify(data);
        render(data);
        setStatus(`campaign ${data.id} from the host`);
      }
    } else if (msg.method !== undefined && msg.id !== undefined) {
      // Requests we do not handle (ping, teardown): answer so the host is not left waiting.
      window.parent.postMessage({ jsonrpc: "2.0", id: msg.id, result: {} }, "*");
    }
  }

  function resultData(result) {
    if (result.structuredContent) return result.structuredContent;
    const text = (result.content || []).find((c) => c.type === "text");
    try { return text ? JSON.parse(text.text) : null; } catch { return null; }
  }

  async function connectToHost() {
    window.addEventListener("message", onHostMessage);
    await rpc("ui/initialize", {
      appInfo: { name: "sotalab-dashboard", version: "1" },
      appCapabilities: {},
      protocolVersion: "2026-01-26",
    });
    window.parent.postMessage({ jsonrpc: "2.0", method: "ui/notifications/initialized", params: {} }, "*");
  }

  async function callTool(name, args) {
    if (IN_APP) {
      await appReady;
      const result = await rpc("tools/call", { name, arguments: args });
      if (result.isError) {
        const text = (result.content || []).map((c) => c.text || "").join(" ");
        throw new Error(text || `${name} failed`);
      }
      return resultData(result);
    }
    const response = await fetch(`/ui/api/${encodeURIComponent(name)}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(args),
      credentials: "same-origin",
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `${name}: HTTP ${response.status}`);
    return body;
  }

  // ------------------------------------------------------------------ DOM helpers

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "onclick") node.addEventListener("click", value);
      else if (value !== undefined && value !== null) node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "onclick") node.addEventListener("click", value);
      else node.setAttribute(key, value);
    }
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const fmt = (v, digits = 4) => (v === null || v === undefined ? "-" : Number(v).toFixed(digits));
  const signed = (v, digits = 4) => (v === null || v === undefined ? "-" : (v >= 0 ? "+" : "") + Number(v).toFixed(digits));
  const interval = (iv) => (iv ? `[${signed(iv[0])}, ${signed(iv[1])}]` : "n/a");
  const labelClass = (label) => (label ? LABEL_CLASSES[label] || "label-failure" : "label-none");

  function card(key, value, sub, id) {
    return el("div", { class: "card" }, el("div", { class: "k" }, key),
      el("div", { class: "v", id }, value), sub ? el("div", { class: "s" }, sub) : null);
  }

  function table(header, rows) {
    return el("table", {}, el("thead", {}, el("tr", {}, header.map((h) => el("th", {}, h)))), el("tbody", {}, rows));
  }

  function setStatus(text, isError = false) {
    const status = document.getElementById("status");
    status.textContent = text;
    status.className = isError ? "error" : "";
  }

  // ------------------------------------------------------------------ charts

  function scale(domain, range) {
    const [d0, d1] = domain[0] === domain[1] ? [domain[0] - 0.5, domain[1] + 0.5] : domain;
    return (v) => range[0] + ((v - d0) / (d1 - d0)) * (range[1] - range[0]);
  }

  function extent(values) {
    const finite = values.filter((v) => typeof v === "number" && isFinite(v));
    if (!finite.length) return [0, 1];
    const lo = Math.min(...finite), hi = Math.max(...finite), pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.05 || 0.5;
    return [lo - pad, hi + pad];
  }

  function yAxis(root, y, domain, width, left) {
    for (let i = 0; i <= 4; i++) {
      const v = domain[0] + ((domain[1] - domain[0]) * i) / 4, py = y(v);
      root.append(svg("line", { class: "grid", x1: left, x2: width - 10, y1: py, y2: py }));
      root.append(svg("text", { x: left - 4, y: py + 4, "text-anchor": "end" }, Number(v.toPrecision(3)).toString()));
    }
  }

  /** Score per trial: each seed a dot, the mean with ± seed sd, baseline and paper lines. */
  function scoreChart(view) {
    const scored = view.trials.filter((t) => Object.keys(t.seed_scores).length)
      .sort((a, b) => (a.evaluated_at || "").localeCompare(b.evaluated_at || "") || a.id - b.id);
    const width = 720, height = 260, left = 56, bottom = 28;
    const values = scored.flatMap((t) => [...Object.values(t.seed_scores), t.score]);
    values.push(view.baseline.reported, view.baseline.reproduced);
    const domain = extent(values);
    const x = scale([0, Math.max(scored.length - 1, 1)], [left + 20, width - 30]);
    const y = scale(domain, [height - bottom, 10]);
    const root = svg("svg", { id: "score-chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
    root.append(svg("title", {}, `${view.metric} per trial`));
    yAxis(root, y, domain, width, left);
    const hline = (v, cls, text) => {
      if (v === null || v === undefined) return;
      root.append(svg("line", { class: cls, x1: left, x2: width - 10, y1: y(v), y2: y(v), "stroke-dasharray": "4 3" }));
      root.append(svg("text", { x: width - 12, y: y(v) - 3, "text-anchor": "end", class: "muted" }, text));
    };
    hline(view.baseline.reproduced, "label-none", "baseline (reproduced)");
    hline(view.baseline.reported, "label-disqualified", "paper (reported)");
    scored.forEach((t, i) => {
      const cx = x(i), cls = labelClass(t.label);
      for (const [seed, s] of Object.entries(t.seed_scores)) {
        const dot = svg("circle", { cx: cx + 6, cy: y(s), r: 2.5, class: cls, opacity: 0.55, "data-seed": seed });
        dot.append(svg("title", {}, `trial ${t.id} seed ${seed}: ${fmt(s)}`));
        root.append(dot);
      }
      if (t.score !== null) {
        const sd = t.score_std || 0;
        root.append(svg("line", { x1: cx, x2: cx, y1: y(t.score - sd), y2: y(t.score + sd), class: cls, "stroke-width": 2 }));
        const mean = svg("circle", { cx, cy: y(t.score), r: 5, class: `${cls} node`, "data-trial": t.id,
          onclick: () => showPatch(t.id) });
        mean.append(svg("title", {}, `trial ${t.id} (${t.label || "unscored"}): ${fmt(t.score)} \u00b1 ${fmt(t.score_std)}`));
        root.append(mean);
      }
      root.append(svg("text", { x: cx, y: height - 10, "text-anchor": "middle" }, `#${t.id}`));
    });
    root.append(svg("line", { class: "axis", x1: left, x2: left, y1: 10, y2: height - bottom }));
    return root;
  }

  /** Depth-first rows, one per trial; depth = column. */
  function treeLayout(trials) {
    const ids = new Set(trials.map((t) => t.id)), children = new Map();
    for (const t of trials) {
      const parent = ids.has(t.parent_id) ? t.parent_id : null;
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(t.id);
    }
    const positions = new Map(), stack = [...(children.get(null) || [])].reverse().map((id) => [id, 0]);
    while (stack.length) {
      const [id, depth] = stack.pop();
      positions.set(id, [depth, positions.size]);
      for (const child of [...(children.get(id) || [])].reverse()) stack.push([child, depth + 1]);
    }
    return positions;
  }

  function lineageTree(view) {
    const byId = new Map(view.trials.map((t) => [t.id, t])), positions = treeLayout(view.trials);
    const rowH = 26, colW = 34, width = 720, height = Math.max(positions.size, 1) * rowH + 12;
    const root = svg("svg", { id: "lineage", width, height, viewBox: `0 0 ${width} ${height}` });
    const px = (d) => 16 + d * colW, py = (r) => 14 + r * rowH;
    for (const [id, [depth, row]] of positions) {
      const parent = byId.get(id).parent_id;
      if (positions.has(parent)) {
        const [pd, pr] = positions.get(parent);
        root.append(svg("path", { d: `M${px(pd)},${py(pr)} V${py(row)} H${px(depth)}`, fill: "none", stroke: "#aaa" }));
      }
    }
    for (const [id, [depth, row]] of positions) {
      const t = byId.get(id);
      const g = svg("g", { class: "tree-node", "data-trial": id, onclick: () => showPatch(id) });
      g.append(svg("circle", { cx: px(depth), cy: py(row), r: 7,
        class: `node ${labelClass(t.label)}${t.audit ? " audited" : ""}` }));
      const verdict = t.audit ? ` ${VERDICT_MARKS[t.audit.verdict] || ""} ${t.audit.verdict}` : "";
      g.append(svg("text", { x: px(depth) + 12, y: py(row) + 4 },
        `#${t.id} ${t.kind} ${fmt(t.score)} ${t.label || "unscored"}${verdict} [${t.integrity}] ${t.hypothesis.slice(0, 60)}`));
      g.append(svg("title", {}, t.hypothesis));
      root.append(g);
    }
    return root;
  }

  function lineChart(id, title, xs, lines, height = 160) {
    const width = 720, left = 56, bottom = 22;
    const domain = extent(lines.flatMap((l) => l.values));
    const x = scale(xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1], [left, width - 10]);
    const y = scale(domain, [height - bottom, 16]);
    const root = svg("svg", { id, width, height, viewBox: `0 0 ${width} ${height}` });
    root.append(svg("text", { x: left, y: 11 }, title));
    yAxis(root, y, domain, width, left);
    lines.forEach((line, n) => {
      const pts = xs.map((t, i) => [t, line.values[i]]).filter(([, v]) => typeof v === "number");
      if (!pts.length) return;
      root.append(svg("polyline", { fill: "none", stroke: line.colour, "stroke-width": 1.5,
        points: pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ") }));
      root.append(svg("text", { x: width - 12, y: 11 + 12 * n, "text-anchor": "end", fill: line.colour }, line.name));
    });
    root.append(svg("text", { x: width - 12, y: height - 6, "text-anchor": "end", class: "muted" }, "seconds"));
    return root;
  }

  // ------------------------------------------------------------------ views

  const state = { route: null, appRoute: null, campaign: null, detail: null, busy: false, lastJson: "" };

  /** The view to show: the URL fragment in a browser; in a host's iframe, where the
   * page does not own its URL, a variable. */
  function currentRoute() {
    return (IN_APP ? state.appRoute : location.hash.replace(/^#\/?/, "")) || "campaigns";
  }

  function navigate(route) {
    if (IN_APP) {
      state.appRoute = route;
      refresh();
    } else {
      location.hash = `#/${route}`;
    }
  }

  async function showCampaigns() {
    const page = await callTool("campaign_get", { limit: 100 });
    const rows = page.campaigns.map((c) => el("tr", { class: "click", "data-campaign": c.id,
      onclick: () => navigate(`campaign/${c.id}`) },
    el("td", { class: "num" }, c.id), el("td", {}, c.name), el("td", {}, c.status),
    el("td", {}, `${c.objective.direction} ${c.objective.metric}`), el("td", { class: "num" }, c.trial_count)));
    mount(el("h2", {}, `Campaigns (${page.total})`), table(["id", "name", "status", "objective", "trials"], rows));
  }

  function budgetCard(b) {
    const share = b.limit ? Math.min(b.spent / b.limit, 1) : 0;
    const over = b.limit && b.spent > b.limit;
    return el("div", { class: "card", "data-budget": b.name }, el("div", { class: "k" }, `budget: ${b.name}`),
      el("div", { class: "v" }, `${Number(b.spent.toPrecision(4))} / ${b.limit === null ? "\u221e" : b.limit}`),
      el("div", { class: "bar" }, el("div", { class: over ? "over" : "", "data-share": share })));
  }

  function render(view) {
    state.campaign = view;
    const b = view.baseline, claim = view.best_claim, final = view.finalization;
    const source = b.reported_source;
    const cards = el("div", { class: "cards" },
      card("objective", `${view.direction} ${view.metric}`, `target ${fmt(view.target)}, min effect ${view.min_effect}`),
      card("reported (paper)", fmt(b.reported),
        source ? `table ${source.table}, page ${source.page}: ${source.row_header} / ${source.column_header} = ${source.text}`
          : "source not traced", "reported"),
      card("reproduced (server)", fmt(b.reproduced), `gap ${signed(b.gap)}; ${b.within_tolerance === null ? "not scored"
        : b.within_tolerance ? "within" : "outside"} \u00b1${b.tolerance}`, "reproduced"),
      card("best claim", claim ? fmt(claim.score) : "none",
        claim ? `trial ${claim.trial}: gain ${signed(claim.gain)}, 95% ${interval(claim.interval)}` :
          "no valid full audit yet", "claim"),
      card("held-out", final ? signed(final.gain) : "not finalized",
        final ? `trial ${final.best.trial} ${fmt(final.best.mean)} vs baseline ${fmt(final.baseline.mean)}, 95% ${interval(final.interval)}` : "",
        "heldout"),
      ...view.budgets.map(budgetCard));
    const trialRows = view.trials.map((t) => el("tr", { class: "click", "data-trial": t.id, onclick: () => showPatch(t.id) },
      el("td", { class: "num" }, t.id), el("td", { class: "num" }, t.parent_id ?? "-"), el("td", {}, t.kind),
      el("td", { class: "hypothesis" }, t.hypothesis),
      el("td", { class: "seeds" }, Object.entries(t.seed_scores).map(([s, v]) => `${s}: ${fmt(v)}`).join(", ") || "-"),
      el("td", { class: "num score" }, fmt(t.score)), el("td", { class: "num" }, fmt(t.score_std)),
      el("td", { class: labelClass(t.label).replace("label-", "verdict-") }, t.label || "-"),
      el("td", { class: t.audit ? `verdict-${t.audit.verdict}` : "" }, t.audit ? `${t.audit.verdict} (${t.audit.depth})` : "-"),
      el("td", {}, t.integrity)));
    const auditRows = view.trials.filter((t) => t.audit).map((t) => el("tr", { class: "click", "data-audit": t.audit.id,
      onclick: () => showAudit(t.audit.id) },
    el("td", { class: "num" }, t.audit.id), el("td", { class: "num" }, t.id), el("td", {}, t.audit.depth),
    el("td", { class: `verdict-${t.audit.verdict}` }, t.audit.verdict), el("td", {}, t.audit.failed.join(", ") || "-"),
    el("td", {}, interval(t.audit.interval)), el("td", {}, t.audit.integrity)));
    const runRows = view.runs.map((r) => el("tr", { class: "click", "data-run": r.id,
      onclick: () => navigate(`run/${r.id}`) },
    el("td", { class: "num" }, r.id), el("td", { class: "num" }, r.trial_id ?? "-"), el("td", { class: "num" }, r.seed ?? "-"),
    el("td", {}, r.purpose), el("td", {}, r.status), el("td", { class: "num" }, r.wall_s ?? "-"),
    el("td", { class: "num" }, r.peak_rss_mb ?? "-")));
    mount(
      el("h2", { id: "campaign-title" }, `Campaign ${view.id}: ${view.name} (${view.status})`),
      el("p", { class: "muted" }, view.description),
      cards,
      el("h2", {}, "Score per trial"),
      el("div", { class: "legend" }, el("span", { class: "verdict-valid" }, "keep"), el("span", { class: "muted" }, "discard"),
        el("span", { class: "verdict-invalid" }, "disqualified"), el("span", { class: "verdict-inconclusive" }, "failed run")),
      scoreChart(view),
      el("h2", {}, "Lineage (click a trial for its diff)"), lineageTree(view),
      el("div", { id: "detail" }),
      el("h2", {}, `Trials (${view.trials.length}${view.trials_omitted ? `, ${view.trials_omitted} older not shown` : ""})`),
      table(["id", "parent", "kind", "hypothesis", "per-seed", view.metric, "sd", "label", "audit", "integrity"], trialRows),
      el("h2", {}, "Audits"), auditRows.length ? table(["audit", "trial", "depth", "verdict", "failed", "gain 95%", "integrity"], auditRows)
        : el("p", { class: "muted" }, "no audits yet"),
      el("h2", {}, `Runs (${view.running.length} running)`), table(["run", "trial", "seed", "purpose", "status", "wall s", "peak RSS MB"], runRows));
    for (const bar of document.querySelectorAll(".bar > div")) bar.style.width = `${Number(bar.dataset.share) * 100}%`;
    if (state.detail) state.detail();
  }

  function diffView(text) {
    const pre = el("pre", { id: "diff" });
    for (const line of text.split("\n")) {
      const cls = line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del"
        : line.startsWith("@@") ? "hunk" : null;
      pre.append(cls ? el("span", { class: cls }, line) : line, "\n");
    }
    return pre;
  }

  function showPatch(trialId) {
    state.detail = async () => {
      const detail = document.getElementById("detail");
      const trial = state.campaign.trials.find((t) => t.id === trialId);
      if (!detail || !trial) return;
      detail.replaceChildren(el("div", { class: "panel" }, el("h2", {}, `Trial ${trialId}: diff against its parent`),
        el("p", { class: "hypothesis" }, trial.hypothesis), el("p", { class: "muted" }, "loading\u2026")));
      try {
        const patch = await callTool("workspace_diff", { trial: trialId, committed: true });
        detail.firstChild.lastChild.replaceWith(diffView(patch.diff || "(no change)"));
      } catch (err) {
        detail.firstChild.lastChild.replaceWith(el("p", { class: "muted" }, err.message));
      }
    };
    state.detail();
  }

  function showAudit(auditId) {
    state.detail = async () => {
      const detail = document.getElementById("detail");
      if (!detail) return;
      const audit = await callTool("audit_get", { audit: auditId });
      const items = audit.checks.map((c) => el("li", { "data-check": c.name },
        el("b", {}, `${c.name}: `), el("span", { class: `verdict-${c.verdict === "pass" ? "valid" : c.verdict === "fail" ? "invalid" : "inconclusive"}` }, c.verdict),
        ` \u2014 ${c.summary}`,
        c.evidence.length && c.verdict !== "pass" ? el("ul", {}, c.evidence.map((e) =>
          el("li", { class: "finding" }, `${e.rule || "-"} ${e.file || ""}:${e.line ?? ""} ${e.detail || e.value || ""}`))) : null));
      detail.replaceChildren(el("div", { class: "panel", id: "audit" },
        el("h2", {}, `Audit ${audit.id} of trial ${audit.trial}: `, el("span", { class: `verdict-${audit.verdict}` }, audit.verdict)),
        el("p", {}, audit.reason), el("ul", {}, items)));
    };
    state.detail();
  }

  async function showCampaign(id) {
    const view = await callTool("campaign_view", { campaign: id });
    const json = JSON.stringify(view);
    if (json !== state.lastJson || state.route !== `campaign/${id}`) render(view);
    state.lastJson = json;
  }

  async function showRun(id) {
    const [run, logs, metrics] = await Promise.all([callTool("run_wait", { run: id, timeout_s: 0 }),
      callTool("run_logs", { run: id, mode: "tail", lines: 200 }), callTool("run_logs", { run: id, mode: "metrics" })]);
    const fields = metrics.series.fields || [], points = metrics.series.points || [];
    const column = (name) => { const i = fields.indexOf(name); return points.map((p) => (i >= 0 ? p[i] : null)); };
    const t = column("t");
    const gpus = [...new Set(fields.filter((f) => /^gpu\d+_/.test(f)).map((f) => f.split("_")[0]))];
    const summary = run.telemetry || {};
    mount(
      el("h2", { id: "run-title" }, `Run ${run.id}: `, el("span", { id: "run-status" }, run.status),
        run.trial_id ? ` (trial ${run.trial_id}, seed ${run.seed ?? "-"})` : ""),
      el("p", { class: "muted" }, run.reason || ""),
      el("div", { class: "cards" }, card("samples", String(metrics.series.total_points ?? points.length), null, "run-samples"),
        card("peak RSS MB", summary.peak_rss_mb ?? "-"), card("wall s", summary.wall_s ?? "-"),
        card("GPUs", gpus.length ? gpus.join(", ") : "none (NVML found no GPU)")),
      lineChart("cpu-chart", "CPU % and RSS MB", t, [{ name: "CPU %", values: column("cpu_pct"), colour: "#1565c0" },
        { name: "RSS MB", values: column("rss_mb"), colour: "#ef6c00" }]),
      ...gpus.map((g) => lineChart(`${g}-chart`, `${g}: utilisation % and memory MB`, t,
        [{ name: "util %", values: column(`${g}_util`), colour: "#2e7d32" },
          { name: "memory MB", values: column(`${g}_mem_mb`), colour: "#6a1b9a" }])),
      el("h2", {}, `Log (last lines of ${logs.total_bytes} bytes)`), el("pre", { id: "log" }, logs.text));
    const log = document.getElementById("log");
    log.scrollTop = log.scrollHeight;
  }

  function mount(...nodes) {
    document.getElementById("view").replaceChildren(...nodes);
  }

  async function refresh() {
    if (state.busy) return;
    state.busy = true;
    const route = currentRoute();
    try {
      const [kind, id] = route.split("/");
      if (route !== state.route) state.detail = null;
      if (kind === "campaign" && id) await showCampaign(Number(id));
      else if (kind === "run" && id) await showRun(Number(id));
      else await showCampaigns();
      state.route = route;
      setStatus(`updated ${new Date().toLocaleTimeString()}`);
    } catch (err) {
      setStatus(err.message, true);
    } finally {
      state.busy = false;
    }
  }

  document.getElementById("home").addEventListener("click", () => navigate("campaigns"));
  window.addEventListener("hashchange", refresh);
  setInterval(() => { if (!document.hidden && (!IN_APP || state.route)) refresh(); }, POLL_MS);
  if (IN_APP) {
    appReady = connectToHost().catch((err) => setStatus(`host: ${err.message}`, true));
    appReady.then(() => { if (!appResult) setStatus("waiting for the host's tool result\u2026"); });
  } else {
    refresh();
  }
})();

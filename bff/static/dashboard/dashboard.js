// The operators' dashboard: signs in with an operator token, sends the DashboardOverview document to
// /graphql and draws what it returns. Plain script, no build step; every asset comes from this origin.
(function () {
  "use strict";

  var TOKEN_KEY = "bff.dashboard.token";
  var DOCUMENT_URL = "/dashboard/queries.graphql";
  var OPERATION = "DashboardOverview";
  var TOP = 10;
  var SHOP_OFFSET_MS = 8 * 3600 * 1000; // the shop's calendar is UTC+8 whatever the browser's zone
  var DAY_MS = 24 * 3600 * 1000;
  var PALETTE = ["#2f6fde", "#f08c2e", "#2faa6b", "#8b5cf6", "#e0506e"];

  var charts = {};
  var documentText = null;

  function el(testid) {
    return document.querySelector('[data-testid="' + testid + '"]');
  }

  // ---- formatting -------------------------------------------------------------------------------

  function formatCount(n) {
    return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
  }

  function formatRate(r) {
    return r === null || r === undefined ? "–" : (r * 100).toFixed(1) + "%";
  }

  function formatMoney(m) {
    return m === null || m === undefined ? "–" : m.formatted;
  }

  function shopDay(offsetDays) {
    return new Date(Date.now() + SHOP_OFFSET_MS + offsetDays * DAY_MS).toISOString().slice(0, 10);
  }

  // ---- token and sign-in ------------------------------------------------------------------------

  function operatorName(token) {
    // For display only: the server verifies the token on every request.
    try {
      var payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      var sub = JSON.parse(atob(payload)).sub || "";
      return sub.indexOf("operator:") === 0 ? sub.slice("operator:".length) : sub;
    } catch (e) {
      return "";
    }
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function showSignedIn(signedIn) {
    el("sign-in").hidden = signedIn;
    el("board").hidden = !signedIn;
    el("who").hidden = !signedIn;
    el("operator-name").textContent = signedIn ? operatorName(token()) : "";
    if (signedIn) {
      Object.keys(charts).forEach(function (k) { charts[k].resize(); });
    }
  }

  function showError(code, message) {
    el("error-code").textContent = code || "ERROR";
    el("error-message").textContent = message || "";
    el("error").hidden = false;
  }

  function clearError() {
    el("error").hidden = true;
    el("error-code").textContent = "";
    el("error-message").textContent = "";
  }

  function signIn(event) {
    event.preventDefault();
    var input = el("token-input");
    var value = input.value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    input.value = "";
    clearError();
    showSignedIn(true);
    load();
  }

  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    clearError();
    el("status").textContent = "";
    showSignedIn(false);
  }

  // ---- the API ----------------------------------------------------------------------------------

  function fetchDocument() {
    if (documentText !== null) return Promise.resolve(documentText);
    return fetch(DOCUMENT_URL, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) throw { code: "HTTP_" + response.status, message: "cannot load " + DOCUMENT_URL };
      return response.text().then(function (text) {
        documentText = text;
        return text;
      });
    });
  }

  function query(variables) {
    return fetchDocument().then(function (text) {
      return fetch("/graphql", {
        method: "POST",
        credentials: "omit",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/graphql-response+json, application/json",
          Authorization: "Bearer " + token(),
        },
        body: JSON.stringify({ query: text, operationName: OPERATION, variables: variables }),
      });
    }).then(function (response) {
      // Errors (UNAUTHENTICATED on a bad token included) come back as JSON whatever the status.
      return response.json().catch(function () {
        throw { code: "HTTP_" + response.status, message: response.statusText || "unreadable response" };
      });
    }).then(function (body) {
      if (body.errors && body.errors.length) {
        var first = body.errors[0];
        throw { code: (first.extensions && first.extensions.code) || "ERROR", message: first.message };
      }
      return body.data.dashboard;
    });
  }

  function load(event) {
    if (event) event.preventDefault();
    var form = el("controls");
    var variables = {
      range: { from: form.elements.from.value, to: form.elements.to.value },
      granularity: form.elements.granularity.value,
      top: TOP,
    };
    var status = el("status");
    status.textContent = "Loading…";
    status.removeAttribute("data-loaded");
    el("load").disabled = true;
    clearError();
    return query(variables).then(function (dashboard) {
      render(dashboard);
      status.textContent = "Showing " + dashboard.range.from + " to " + dashboard.range.to;
      status.setAttribute("data-loaded", dashboard.range.from + "/" + dashboard.range.to + "/" + dashboard.granularity);
    }).catch(function (error) {
      status.textContent = "";
      if (error instanceof Error) showError("NETWORK", error.message);
      else showError(error.code, error.message);
    }).then(function () {
      el("load").disabled = false;
    });
  }

  // ---- rendering --------------------------------------------------------------------------------

  function render(d) {
    renderKpis(d.summary);
    renderTrend(d.trend);
    renderFunnel(d.funnel);
    renderRetention(d.retention);
    fillTable("top-products", d.topProducts, function (p) {
      return [p.title, formatCount(p.views), formatCount(p.addToCarts), formatCount(p.unitsSold), formatMoney(p.sales)];
    });
    fillTable("sales-by-campaign", d.salesByCampaign, function (c) {
      // Regular orders come as kind NONE; a deleted campaign has no name any more.
      var name = c.name || (c.kind === "NONE" ? "No campaign" : "–");
      return [c.kind, name, formatCount(c.orders), formatMoney(c.gmv)];
    });
    fillTable("top-keywords", d.topKeywords, function (k) {
      return [k.keyword, formatCount(k.searches), formatCount(k.zeroResults)];
    });
    fillTable("zero-result-keywords", d.zeroResultKeywords, function (k) {
      return [k.keyword, formatCount(k.searches)];
    });
  }

  function renderKpis(s) {
    var counts = ["visitors", "pageViews", "orders", "paidOrders", "payingMembers", "newMembers", "returningMembers"];
    counts.forEach(function (k) { el("kpi-" + k).textContent = formatCount(s[k]); });
    ["gmv", "averageOrderValue", "refunds"].forEach(function (k) { el("kpi-" + k).textContent = formatMoney(s[k]); });
    ["conversionRate", "repurchaseRate"].forEach(function (k) { el("kpi-" + k).textContent = formatRate(s[k]); });
  }

  // Rows are built with textContent only: keywords and titles are shopper and operator input.
  function fillTable(testid, rows, cells) {
    var table = el(testid);
    var body = table.tBodies[0];
    body.replaceChildren();
    if (!rows.length) {
      var tr = body.insertRow();
      tr.className = "empty";
      var td = tr.insertCell();
      td.colSpan = table.tHead.rows[0].cells.length;
      td.textContent = "No data in this range";
      return;
    }
    rows.forEach(function (row) {
      var tr = body.insertRow();
      tr.setAttribute("data-row", "");
      cells(row).forEach(function (text, i) {
        var td = tr.insertCell();
        td.textContent = text;
        if (table.tHead.rows[0].cells[i].classList.contains("num")) td.className = "num";
      });
    });
  }

  function chart(testid) {
    if (!charts[testid]) {
      var node = el(testid);
      charts[testid] = echarts.init(node, null, { renderer: "canvas" });
      charts[testid].on("finished", function () { node.setAttribute("data-rendered", "true"); });
    }
    el(testid).removeAttribute("data-rendered");
    return charts[testid];
  }

  function renderTrend(trend) {
    chart("chart-trend").setOption({
      color: PALETTE,
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { data: ["Visitors", "GMV (¥)"], top: 0 },
      grid: { left: 48, right: 64, top: 36, bottom: 28 },
      xAxis: { type: "category", data: trend.map(function (b) { return b.bucket; }) },
      yAxis: [
        { type: "value", name: "Visitors", minInterval: 1 },
        { type: "value", name: "GMV (¥)", splitLine: { show: false } },
      ],
      series: [
        { name: "Visitors", type: "line", smooth: 0.2, showSymbol: true, data: trend.map(function (b) { return b.visitors; }) },
        {
          name: "GMV (¥)", type: "bar", yAxisIndex: 1, barMaxWidth: 24, itemStyle: { opacity: 0.75 },
          data: trend.map(function (b) { return b.gmv.amount / 100; }),
        },
      ],
    }, true);
  }

  function renderFunnel(funnel) {
    chart("chart-funnel").setOption({
      color: PALETTE,
      animation: false,
      tooltip: { trigger: "item" },
      series: [{
        type: "funnel",
        sort: "none",
        left: "4%", width: "56%", top: 8, bottom: 8,
        minSize: "12%",
        label: {
          position: "right",
          color: "#1d2433",
          formatter: function (p) { return p.name + "  " + formatCount(p.value) + " · " + formatRate(p.data.rate); },
        },
        labelLine: { length: 12 },
        data: funnel.map(function (s) { return { name: s.step, value: s.visitors, rate: s.rateFromFirst }; }),
      }],
    }, true);
    fillTable("funnel-table", funnel, function (s) {
      return [s.step, formatCount(s.visitors), formatRate(s.rateFromPrevious), formatRate(s.rateFromFirst)];
    });
  }

  function renderRetention(cohorts) {
    var days = ["D1", "D7", "D30"];
    var cells = [];
    var top = 0;
    cohorts.forEach(function (c, y) {
      [c.day1, c.day7, c.day30].forEach(function (v, x) {
        // A day that has not happened yet is null: no cell rather than a misleading 0%.
        if (v !== null && v !== undefined) {
          cells.push([x, y, Math.round(v * 1000) / 10]);
          top = Math.max(top, v * 100);
        }
      });
    });
    var scale = Math.max(10, Math.ceil(top / 10) * 10);
    chart("chart-retention").setOption({
      animation: false,
      tooltip: {
        formatter: function (p) {
          var c = cohorts[p.value[1]];
          return c.cohort + " (" + formatCount(c.size) + ") " + days[p.value[0]] + ": " + p.value[2] + "%";
        },
      },
      grid: { left: 8, right: 16, top: 8, bottom: 56, containLabel: true },
      xAxis: { type: "category", data: days, splitArea: { show: true } },
      yAxis: {
        type: "category", inverse: true, splitArea: { show: true },
        data: cohorts.map(function (c) { return c.cohort + " (" + formatCount(c.size) + ")"; }),
      },
      visualMap: {
        // Scaled to the best cell (rounded up to 10%): retention is small, a 0–100% scale washes it out.
        min: 0, max: scale, calculable: false, orient: "horizontal", left: "center", bottom: 0,
        itemHeight: 160, text: [scale + "%", "0%"], inRange: { color: ["#eef4ff", "#2f6fde"] },
      },
      series: [{
        type: "heatmap",
        data: cells,
        label: { show: true, formatter: function (p) { return p.value[2] + "%"; } },
      }],
    }, true);
  }

  // ---- start ------------------------------------------------------------------------------------

  function start() {
    var form = el("controls");
    form.elements.from.value = shopDay(-29); // the last 30 days, today included
    form.elements.to.value = shopDay(0);
    el("sign-in-form").addEventListener("submit", signIn);
    el("sign-out").addEventListener("click", signOut);
    form.addEventListener("submit", load);
    window.addEventListener("resize", function () {
      Object.keys(charts).forEach(function (k) { charts[k].resize(); });
    });
    var signedIn = token() !== null;
    showSignedIn(signedIn);
    if (signedIn) load();
  }

  start();
})();

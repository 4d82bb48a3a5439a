/* The Models view's charts, drawn with Apache ECharts (window.echarts, served beside this file).
 * Every text shown comes from the registry: it is escaped before it enters a tooltip or a label. */
(function () {
  "use strict";

  function esc(value) {
    return String(value === null || value === undefined ? "" : value).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function clip(value, length) {
    var text = String(value === null || value === undefined ? "" : value);
    return text.length > length ? text.slice(0, length - 1) + "\u2026" : text;
  }

  function safeUrl(url) {
    if (typeof url !== "string") return null;
    if (/^https?:\/\//i.test(url) || (url.charAt(0) === "/" && url.charAt(1) !== "/")) return url;
    return null;
  }

  function link(url, text) {
    var safe = safeUrl(url);
    if (!safe) return "";
    var target = safe.charAt(0) === "/" ? "_top" : "_blank";
    return '<a href="' + esc(safe) + '" target="' + target + '" rel="noopener">' + esc(text) + "</a>";
  }

  function openLink(url) {
    var safe = safeUrl(url);
    if (!safe) return;
    if (safe.charAt(0) === "/") window.top.location.href = safe;
    else window.open(safe, "_blank", "noopener");
  }

  function fmt(value) {
    if (value === null || value === undefined) return "-";
    if (typeof value !== "number") return esc(value);
    return Math.abs(value) >= 1000 ? value.toFixed(0) : Number(value.toPrecision(4)).toString();
  }

  function makeChart(id) {
    var element = document.getElementById(id);
    if (!element) return null;
    var chart = echarts.init(element, null, { renderer: "canvas" });
    chart.on("click", function (params) {
      if (params.data && params.data.link) openLink(params.data.link);
    });
    window.addEventListener("resize", function () { chart.resize(); });
    return chart;
  }

  function empty(chart, text) {
    chart.setOption({ title: { text: text, left: "center", top: "middle", textStyle: { color: "#718096", fontSize: 14 } } });
  }

  // A chart showing one metric at a time (its legend selects one) fits its value axis to that metric's points and
  // limits: a gate or decay limit far from the points is still drawn, and the points are not flattened by another
  // metric's scale.
  function fitToSelected(chart, valuesOf, limitsOf, selected) {
    function fit(name) {
      var values = valuesOf(name).filter(function (v) { return v !== null && v !== undefined; });
      limitsOf(name).forEach(function (t) { values.push(t.value); });
      if (!values.length) return;
      var low = Math.min.apply(null, values), high = Math.max.apply(null, values);
      var pad = (high - low) * 0.08 || Math.abs(high) * 0.05 || 1;
      chart.setOption({ yAxis: { min: Number((low - pad).toPrecision(4)), max: Number((high + pad).toPrecision(4)) } });
    }
    chart.on("legendselectchanged", function (event) { fit(event.name); });
    Object.keys(selected).forEach(function (name) { if (selected[name]) fit(name); });
  }

  var TOOLTIP = { trigger: "item", enterable: true, confine: true, extraCssText: "max-width: 420px; white-space: normal;" };

  function intervalZoom(count) {
    return count > 40 ? [{ type: "inside" }, { type: "slider", height: 18, bottom: 4 }] : [];
  }

  function intervalTooltip(data, extra) {
    return function (params) {
      var row = data.intervals[params.dataIndex] || {};
      return (
        "<b>" + esc(params.seriesName) + "</b>: " + fmt(Array.isArray(params.value) ? params.value[params.value.length - 1] : params.value) +
        "<br>interval " + esc(row.start) + " \u2192 " + esc(row.end) + "<br>scored by v" + esc(row.version) +
        (extra ? extra(params, row) : "") +
        "<br>" + intervalLinks(row)
      );
    };
  }

  function intervalLinks(row) {
    return [link(row.report_url, "drift report"), link(row.monitoring_url, "MLflow monitoring run"), link(row.airflow_url, "Airflow run")]
      .filter(Boolean).join(" \u00b7 ");
  }

  function intervalPoints(data, values, prefer) {
    return values.map(function (value, index) {
      var row = data.intervals[index];
      return { value: value, link: (prefer === "report" && row.report_url) || row.monitoring_url || row.report_url || null };
    });
  }

  function intervalAxis(data) {
    return {
      type: "category",
      data: data.intervals.map(function (row) { return row.start.slice(0, 16).replace("T", " "); }),
      axisLabel: { hideOverlap: true },
    };
  }

  function holdout(data) {
    var chart = makeChart("chart-holdout");
    if (!data.holdout.metrics.length) return empty(chart, "No version has held-out metrics yet");
    var versions = data.versions;
    var primary = { binary: "roc_auc", multiclass: "f1_macro", regression: "rmse" }[data.task];
    var selected = {};
    data.holdout.metrics.forEach(function (metric) {
      selected[metric] = metric === primary || (data.holdout.metrics.indexOf(primary) < 0 && metric === data.holdout.metrics[0]);
    });
    var series = data.holdout.metrics.map(function (metric) {
      var marks = [];
      versions.forEach(function (version, index) {
        version.aliases.forEach(function (alias) {
          if ((alias === "champion" || alias === "challenger") && version.metrics[metric] !== undefined && version.metrics[metric] !== null) {
            marks.push({ name: alias, coord: [index, version.metrics[metric]], value: alias,
              itemStyle: { color: alias === "champion" ? "#2f855a" : "#b7791f" } });
          }
        });
      });
      var limits = data.holdout.thresholds.filter(function (t) { return t.metric === metric; });
      return {
        name: metric,
        type: "line",
        connectNulls: true,
        symbolSize: 8,
        data: versions.map(function (version) {
          var value = version.metrics[metric];
          return { value: value === undefined ? null : value, link: version.version_url || version.run_url || version.airflow_url };
        }),
        markPoint: { symbol: "pin", symbolSize: 42, label: { fontSize: 9, formatter: function (p) { return p.name === "champion" ? "champ" : "chall"; } }, data: marks },
        markLine: limits.length ? {
          symbol: "none",
          lineStyle: { type: "dashed", color: "#c53030" },
          label: { formatter: function (p) { return "gate " + p.name; }, position: "insideEndTop" },
          data: limits.map(function (t) { return { name: t.kind + " " + fmt(t.value), yAxis: t.value }; }),
        } : undefined,
      };
    });
    chart.setOption({
      tooltip: Object.assign({}, TOOLTIP, {
        formatter: function (params) {
          if (params.componentType !== "series") return esc(params.name);
          var version = versions[params.dataIndex];
          return (
            "<b>v" + esc(version.version) + "</b>" + (version.aliases.length ? " (" + esc(version.aliases.join(", ")) + ")" : "") +
            "<br>" + esc(params.seriesName) + ": " + fmt(params.value) +
            "<br>gate: " + esc(version.gate_passed === "true" ? "passed" : version.gate_passed === "false" ? "failed" : "not evaluated") +
            (version.trigger_reason ? '<br>trained because: <span title="' + esc(version.trigger_reason) + '">' + esc(clip(version.trigger_reason, 120)) + "</span>" : "") +
            (version.created ? "<br>registered " + esc(version.created) : "") +
            "<br>" + [link(version.version_url, "MLflow model version"), link(version.run_url, "MLflow training run"), link(version.airflow_url, "Airflow run")].filter(Boolean).join(" \u00b7 ")
          );
        },
      }),
      legend: { type: "scroll", selectedMode: "single", selected: selected, top: 0 },
      grid: { left: 60, right: 90, top: 40, bottom: 50 },
      xAxis: { type: "category", data: versions.map(function (v) { return "v" + v.version; }), axisLabel: { hideOverlap: true } },
      yAxis: { type: "value", scale: true },
      dataZoom: versions.length > 30 ? [{ type: "inside" }, { type: "slider", height: 18, bottom: 4 }] : [],
      series: series,
    });
    fitToSelected(
      chart,
      function (metric) { return versions.map(function (v) { return v.metrics[metric]; }); },
      function (metric) { return data.holdout.thresholds.filter(function (t) { return t.metric === metric; }); },
      selected
    );
  }

  function driftShare(data) {
    var chart = makeChart("chart-drift-share");
    var share = data.drift.share;
    if (!share.some(function (v) { return v !== null; })) return empty(chart, "No drift check yet");
    var threshold = data.drift.threshold;
    chart.setOption({
      tooltip: Object.assign({}, TOOLTIP, { formatter: intervalTooltip(data, function (params) {
        return threshold === null ? "" : "<br>threshold " + fmt(threshold) + (params.value >= threshold ? " \u2014 <b>DRIFT</b>" : "");
      }) }),
      grid: { left: 60, right: 90, top: 30, bottom: 50 },
      xAxis: intervalAxis(data),
      yAxis: { type: "value", min: 0, max: 1 },
      dataZoom: intervalZoom(data.intervals.length),
      series: [{
        name: "drift share",
        type: "line",
        connectNulls: false,
        showAllSymbol: true,
        symbolSize: 6,
        data: intervalPoints(data, share, "report"),
        markLine: threshold === null ? undefined : {
          symbol: "none", lineStyle: { type: "dashed", color: "#c53030" },
          label: { formatter: "threshold " + fmt(threshold), position: "insideEndTop" },
          data: [{ yAxis: threshold }],
        },
      }],
    });
  }

  function driftHeatmap(data) {
    var chart = makeChart("chart-drift-heatmap");
    var drift = data.drift;
    if (!drift.columns.length) return empty(chart, "No per-column drift scores yet");
    var drifted = {};
    drift.drifted_cells.forEach(function (cell) { drifted[cell[0] + ":" + cell[1]] = true; });
    var max = 0;
    drift.scores.forEach(function (cell) { if (cell[2] > max) max = cell[2]; });
    var counted = drift.counted_intervals > 0;
    chart.setOption({
      tooltip: Object.assign({}, TOOLTIP, { formatter: function (params) {
        var cell = params.value, row = data.intervals[cell[0]] || {};
        return "<b>" + esc(drift.columns[cell[1]]) + "</b> score " + fmt(cell[2]) +
          (drifted[cell[0] + ":" + cell[1]] ? " \u2014 <b>drifted</b>" : "") +
          "<br>interval " + esc(row.start) + " \u2192 " + esc(row.end) + "<br>scored by v" + esc(row.version) +
          "<br>" + intervalLinks(row);
      } }),
      grid: { left: 170, right: 90, top: 10, bottom: 70 },
      xAxis: intervalAxis(data),
      yAxis: {
        type: "category",
        inverse: true,
        data: drift.columns,
        triggerEvent: true,
        axisLabel: { formatter: function (column, index) {
          return clip(column, 22) + (counted ? " (" + drift.drift_counts[index] + ")" : "");
        } },
        // A label cut short shows the whole column name (and how often it drifted) on hover.
        tooltip: { show: true, formatter: function (params) {
          var at = drift.columns.indexOf(params.value);
          return esc(params.value) + (counted ? "<br>drifted in " + drift.drift_counts[at] + " of " + drift.counted_intervals + " intervals" : "");
        } },
      },
      visualMap: { min: 0, max: max || 1, precision: 2, calculable: true, orient: "vertical", right: 0, top: "middle", itemHeight: 120,
        inRange: { color: ["#ebf8ff", "#4299e1", "#1a365d"] } },
      dataZoom: intervalZoom(data.intervals.length).map(function (z) { return Object.assign({ xAxisIndex: 0 }, z); }),
      series: [{
        name: "drift score",
        type: "heatmap",
        data: drift.scores.map(function (cell) {
          var row = data.intervals[cell[0]];
          return { value: cell, link: row.report_url || row.monitoring_url,
            itemStyle: drifted[cell[0] + ":" + cell[1]] ? { borderColor: "#c53030", borderWidth: 1 } : undefined };
        }),
        progressive: 2000,
      }],
    });
  }

  function lineChart(id, data, names, values, emptyText, thresholds, labels) {
    var chart = makeChart(id);
    if (!names.length) return empty(chart, emptyText);
    var selected = null;
    if (labels && labels.single) {
      selected = {};
      names.forEach(function (name, index) { selected[name] = index === 0; });
    }
    chart.setOption({
      tooltip: Object.assign({}, TOOLTIP, { formatter: intervalTooltip(data) }),
      legend: Object.assign({ type: "scroll", top: 0 }, selected ? { selectedMode: "single", selected: selected } : {}),
      grid: { left: 60, right: 90, top: 40, bottom: 50 },
      xAxis: intervalAxis(data),
      yAxis: { type: "value", scale: !(labels && labels.bar) },
      dataZoom: intervalZoom(data.intervals.length),
      series: names.map(function (name) {
        var limits = (thresholds || []).filter(function (t) { return t.metric === name; });
        return {
          name: name,
          type: labels && labels.bar ? "bar" : "line",
          showAllSymbol: true,
          symbolSize: 5,
          data: intervalPoints(data, values[name]),
          markLine: limits.length ? {
            symbol: "none", lineStyle: { type: "dashed", color: "#c53030" },
            label: { formatter: function (p) { return "decay " + p.name; }, position: "insideEndTop" },
            data: limits.map(function (t) { return { name: t.kind + " " + fmt(t.value), yAxis: t.value }; }),
          } : undefined,
        };
      }),
    });
    if (selected) {
      fitToSelected(
        chart,
        function (name) { return values[name]; },
        function (name) { return (thresholds || []).filter(function (t) { return t.metric === name; }); },
        selected
      );
    }
  }

  var LABELS = {
    rows: "rows scored", labelled_rows: "rows labelled",
    predicted_positive_rate: "predicted positive rate", positive_rate: "observed positive rate",
    mean_prediction: "mean prediction (labelled rows)", mean_target: "mean observed target",
    "prediction.mean": "mean prediction", "prediction.p10": "prediction p10", "prediction.p50": "prediction median",
    "prediction.p90": "prediction p90",
    per_row: "cost per labelled row", total: "cost of the interval",
  };

  // A binary model's prediction is its probability of the positive class; a multiclass model's class mix is
  // one "prediction.share.<class>" (the drift check) and one "observed_share.<class>" (the labels) per class.
  function labelOf(key, task) {
    if (key === "prediction.mean" && task === "binary") return "mean predicted probability";
    // "(other)" (the classes past the 20 most frequent) is "_other_" in a metric name.
    function label(name) { return name === "_other_" ? "(other classes)" : name; }
    if (key.indexOf("prediction.share.") === 0) return "predicted " + label(key.slice("prediction.share.".length));
    if (key.indexOf("observed_share.") === 0) return "observed " + label(key.slice("observed_share.".length));
    return LABELS[key] || key;
  }

  function renamed(values, task) {
    var out = {};
    Object.keys(values).forEach(function (key) { out[labelOf(key, task)] = values[key]; });
    return out;
  }

  function present(values) {
    return Object.keys(values).filter(function (key) { return values[key].some(function (v) { return v !== null; }); });
  }

  function timeline(data) {
    var chart = makeChart("chart-timeline");
    var moves = data.moves, requests = data.requests;
    if (!moves.length && !requests.length && !data.out_of_band.length) return empty(chart, "No alias move or retrain request yet");
    var lanes = [];
    moves.forEach(function (m) { if (lanes.indexOf(m.alias) < 0) lanes.push(m.alias); });
    data.out_of_band.forEach(function (o) { if (lanes.indexOf(o.alias) < 0) lanes.push(o.alias); });
    lanes.push("retrain requests");
    var COLORS = { promotion: "#2f855a", registration: "#3182ce", rollback: "#dd6b20", force: "#c53030" };
    var kinds = {};
    moves.forEach(function (m) { (kinds[m.kind] = kinds[m.kind] || []).push(m); });
    var series = Object.keys(kinds).map(function (kind) {
      return {
        name: kind, type: "scatter", symbolSize: 14, itemStyle: { color: COLORS[kind] || "#805ad5" },
        data: kinds[kind].map(function (m) {
          var versionUrl = (data.versions.filter(function (v) { return v.version === m.to; })[0] || {}).version_url;
          return { value: [m.at, m.alias], move: m, link: m.airflow_url || versionUrl };
        }),
      };
    });
    // When the registry's alias moved outside the project is not recorded anywhere: drawn after the last known event.
    var known = moves.map(function (m) { return m.at; }).concat(requests.map(function (r) { return r.at; }));
    if (data.intervals.length) known.push(data.intervals[data.intervals.length - 1].end);
    var latest = known.length ? known.reduce(function (a, b) { return Date.parse(a) > Date.parse(b) ? a : b; }) : new Date().toISOString();
    var now = new Date(Date.parse(latest) + 86400000).toISOString();
    if (data.out_of_band.length) {
      series.push({
        name: "out-of-band move (not in the signed log)", type: "scatter", symbol: "triangle", symbolSize: 18,
        itemStyle: { color: "#c53030" },
        data: data.out_of_band.map(function (o) { return { value: [now, o.alias], oob: o }; }),
      });
    }
    series.push({
      name: "retrain request", type: "scatter", symbol: "diamond", symbolSize: 12, itemStyle: { color: "#4a5568" },
      data: requests.map(function (r) {
        return { value: [r.at, "retrain requests"], request: r, link: r.source ? "/dags/" + encodeURIComponent(r.source.split("/")[0]) + "/runs/" + encodeURIComponent(r.source.split("/").slice(1).join("/")) : null };
      }),
    });
    chart.setOption({
      tooltip: Object.assign({}, TOOLTIP, { formatter: function (params) {
        var d = params.data || {};
        if (d.move) {
          var m = d.move;
          var versionUrl = (data.versions.filter(function (v) { return v.version === m.to; })[0] || {}).version_url;
          return "<b>" + esc(m.kind) + "</b> of " + esc(m.alias) + ": " + esc(m.from ? "v" + m.from : "-") + " \u2192 v" + esc(m.to) +
            "<br>by " + esc(m.actor) + " at " + esc(m.at) +
            '<br>why: <span title="' + esc(m.reason) + '">' + esc(clip(m.reason, 160)) + "</span>" +
            "<br>" + [link(m.airflow_url, "Airflow run"), link(versionUrl, "MLflow model version")].filter(Boolean).join(" \u00b7 ");
        }
        if (d.oob) return '<b class="warning">&#9888; ' + esc(d.oob.alias) + " \u2192 v" + esc(d.oob.version) + "</b><br>" + esc(d.oob.why) +
          "<br>(when is unknown: the registry does not record it; drawn after the last known event)";
        if (d.request) {
          return "<b>retrain requested</b> at " + esc(d.request.at) + '<br>why: <span title="' + esc(d.request.reason) + '">' +
            esc(clip(d.request.reason, 200)) + "</span>" + (d.link ? "<br>" + link(d.link, "Airflow run " + d.request.source) : "");
        }
        return esc(params.value !== undefined ? params.value : params.name);
      } }),
      legend: { type: "scroll", top: 0 },
      grid: { left: 130, right: 40, top: 40, bottom: 50 },
      xAxis: { type: "time" },
      yAxis: { type: "category", data: lanes, triggerEvent: true, axisLabel: { formatter: function (lane) { return clip(lane, 16); } },
        tooltip: { show: true, formatter: function (params) { return esc(params.value); } } },
      dataZoom: [{ type: "inside" }, { type: "slider", height: 18, bottom: 4 }],
      series: series,
    });
  }

  function drawModel(data) {
    holdout(data);
    driftShare(data);
    driftHeatmap(data);
    var volume = present(data.volume);
    lineChart("chart-volume", data, volume.map(function (k) { return labelOf(k); }), renamed(data.volume), "No scored interval yet", [], { bar: true });
    lineChart("chart-distribution", data, data.distribution.metrics.map(function (k) { return labelOf(k, data.task); }),
      renamed(data.distribution.values, data.task), "No prediction summary yet (the drift check records it per interval)");
    lineChart("chart-performance", data, data.performance.metrics, data.performance.values, "No labelled interval yet",
      data.performance.thresholds, { single: true });
    var cost = present(data.cost);
    lineChart("chart-cost", data, cost.map(function (k) { return labelOf(k); }), renamed(data.cost), "No business cost yet", [], { single: true });
    timeline(data);
  }

  function drawSparklines() {
    Array.prototype.forEach.call(document.querySelectorAll(".sparkline[data-values]"), function (element) {
      var values = JSON.parse(element.getAttribute("data-values"));
      if (!values.some(function (v) { return v !== null; })) { element.style.display = "none"; return; }
      var chart = echarts.init(element, null, { renderer: "canvas" });
      chart.setOption({
        animation: false,
        tooltip: { trigger: "axis", confine: true, formatter: function (p) { return "drift share " + fmt(p[0].value); } },
        grid: { left: 2, right: 2, top: 2, bottom: 2 },
        xAxis: { type: "category", show: false, data: values.map(function (_, i) { return i; }) },
        yAxis: { type: "value", show: false, min: 0, max: 1 },
        series: [{ type: "line", data: values, symbol: "none", areaStyle: { opacity: 0.2 }, lineStyle: { width: 1 } }],
      });
    });
  }

  window.mlopsModelsView = { drawModel: drawModel, drawSparklines: drawSparklines, escape: esc };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawSparklines);
  else drawSparklines();
})();

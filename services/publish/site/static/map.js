/* The site's map: the wards' outlines as the base map (no tile server), each dataset's records as
   points on one canvas, grouped by a pixel grid per zoom level so that tens of thousands stay smooth,
   and a per-ward shading from the aggregate API with its legend beside the map.

   The page passes its settings in the map element's data-config (no inline script is allowed).
   window.cityosMap exposes the map and what is drawn, for tests and for the curious. */
(function () {
  "use strict";

  var element = document.getElementById("cityos-map");
  if (!element || typeof L === "undefined") {
    return; // without the map library the tables below the map still say everything
  }
  var config = JSON.parse(element.getAttribute("data-config"));
  var words = config.words;
  var CELL_PX = 44; // grid cell of the grouping, in screen pixels
  var UNGROUPED_ZOOM = 16; // from here on every record is its own point
  var SHADES = ["#eff3ff", "#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c"];
  var POINT_COLOURS = ["#c2410c", "#15803d", "#7e22ce", "#b45309", "#be185d", "#374151"];

  var nojs = element.querySelector(".map-nojs");
  if (nojs) {
    nojs.remove();
  }
  var controls = document.getElementById("cityos-map-controls");
  if (controls) {
    controls.hidden = false;
  }

  var map = L.map(element, {
    preferCanvas: true,
    zoomControl: false,
    attributionControl: false, // the boundary credit is printed under the map
    zoomSnap: 0.25, // fit the city snugly; the zoom buttons and keys still step by one level
    minZoom: 8,
    maxZoom: 19,
    keyboard: true
  });
  L.control.zoom({ zoomInTitle: words.zoom_in, zoomOutTitle: words.zoom_out }).addTo(map);
  map.setView([33.88, 130.85], 11);
  var canvas = L.canvas({ padding: 0.5 });

  var wardsLayer = null;
  var choroplethLayer = null;
  var wardCounts = {};
  var pointLayers = {};
  var points = {};
  var state = { choropleth: config.layers.length ? config.layers[0].id : null };

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) {
        throw new Error(url + ": " + r.status);
      }
      return r.json();
    });
  }

  function wardName(properties) {
    return config.lang === "ja" ? properties.name_ja : properties.name_en;
  }

  function shadeOf(count, breaks) {
    for (var i = 0; i < breaks.length; i++) {
      if (count <= breaks[i]) {
        return SHADES[i];
      }
    }
    return SHADES[SHADES.length - 1];
  }

  function breaksFor(max) {
    // Zero is its own class; the rest are equal steps up to the largest count.
    var step = Math.max(1, Math.ceil(max / (SHADES.length - 1)));
    var breaks = [0];
    for (var i = 1; i < SHADES.length; i++) {
      breaks.push(step * i);
    }
    return breaks;
  }

  function drawLegend(title, breaks, outside) {
    var legend = document.getElementById("cityos-map-legend");
    if (!legend) {
      return;
    }
    legend.textContent = "";
    var heading = document.createElement("p");
    heading.className = "map-legend__title";
    heading.textContent = words.legend + (title ? " (" + title + ")" : "");
    legend.appendChild(heading);
    var list = document.createElement("ul");
    for (var i = 0; i < breaks.length; i++) {
      var item = document.createElement("li");
      var swatch = document.createElement("span");
      swatch.className = "map-legend__swatch";
      swatch.style.background = SHADES[i];
      item.appendChild(swatch);
      var low = i === 0 ? 0 : breaks[i - 1] + 1;
      item.appendChild(document.createTextNode(i === 0 || low === breaks[i] ? String(breaks[i]) : low + "–" + breaks[i]));
      list.appendChild(item);
    }
    legend.appendChild(list);
    if (outside) {
      var note = document.createElement("p");
      note.textContent = words.outside + ": " + outside;
      legend.appendChild(note);
    }
    legend.hidden = false;
  }

  function shadeWards(aggregate, title) {
    wardCounts = {};
    var max = 0;
    aggregate.wards.forEach(function (row) {
      wardCounts[row.code] = row.count;
      max = Math.max(max, row.count);
    });
    var breaks = breaksFor(max);
    if (choroplethLayer) {
      choroplethLayer.setStyle(function (feature) {
        return { fillColor: shadeOf(wardCounts[feature.id] || 0, breaks) };
      });
    }
    drawLegend(title, breaks, aggregate.outside.count);
  }

  function loadChoropleth() {
    var layer = config.layers.filter(function (l) {
      return l.id === state.choropleth;
    })[0];
    if (!layer || !choroplethLayer) {
      return Promise.resolve();
    }
    return getJSON(layer.aggregate).then(function (aggregate) {
      shadeWards(aggregate, layer.title);
    });
  }

  function drawWards(collection) {
    choroplethLayer = L.geoJSON(collection, {
      renderer: canvas,
      interactive: false,
      style: function () {
        return { stroke: false, fillColor: SHADES[0], fillOpacity: 0.75 };
      }
    });
    wardsLayer = L.geoJSON(collection, {
      renderer: canvas,
      style: function () {
        return { color: "#1f2937", weight: 1.5, fill: false };
      },
      onEachFeature: function (feature, layer) {
        layer.bindTooltip(wardName(feature.properties), { sticky: true });
      }
    });
    var choroplethBox = controls && controls.querySelector('input[data-layer="choropleth"]');
    if (!choroplethBox || choroplethBox.checked) {
      choroplethLayer.addTo(map);
    }
    wardsLayer.addTo(map);
    // The panel's stylesheets may have been applied after the map measured its box.
    map.invalidateSize();
    // Not animated: the map must have settled at the city's extent before it says it is ready, or a
    // zoom key pressed during the animation would be swallowed and the settled zoom reported stale.
    map.fitBounds(wardsLayer.getBounds(), { padding: [8, 8], animate: false });
  }

  function readPoints(collection) {
    var found = [];
    collection.features.forEach(function (feature) {
      var geometry = feature.geometry;
      if (!geometry || geometry.type !== "Point") {
        return;
      }
      found.push({ lon: geometry.coordinates[0], lat: geometry.coordinates[1], properties: feature.properties || {} });
    });
    return found;
  }

  function label(properties) {
    var keys = ["名称", "施設・場所名", "施設名", "name"];
    for (var i = 0; i < keys.length; i++) {
      if (typeof properties[keys[i]] === "string") {
        return properties[keys[i]];
      }
    }
    return "";
  }

  function address(properties) {
    var keys = ["住所", "所在地_連結表記"];
    for (var i = 0; i < keys.length; i++) {
      if (typeof properties[keys[i]] === "string") {
        return properties[keys[i]];
      }
    }
    return "";
  }

  // Groups of nearby records at a zoom level: one per occupied grid cell, at the members' mean.
  function group(list, zoom) {
    if (zoom >= UNGROUPED_ZOOM) {
      return list.map(function (p) {
        return { lat: p.lat, lon: p.lon, members: [p] };
      });
    }
    var cells = new Map();
    list.forEach(function (p) {
      var xy = map.project([p.lat, p.lon], zoom);
      var key = Math.floor(xy.x / CELL_PX) + ":" + Math.floor(xy.y / CELL_PX);
      var cell = cells.get(key);
      if (!cell) {
        cell = { lat: 0, lon: 0, members: [] };
        cells.set(key, cell);
      }
      cell.members.push(p);
      cell.lat += p.lat;
      cell.lon += p.lon;
    });
    var groups = [];
    cells.forEach(function (cell) {
      var n = cell.members.length;
      groups.push({ lat: cell.lat / n, lon: cell.lon / n, members: cell.members });
    });
    return groups;
  }

  function drawPoints(id, colour) {
    var layer = pointLayers[id];
    layer.clearLayers();
    group(points[id] || [], map.getZoom()).forEach(function (g) {
      var n = g.members.length;
      var marker = L.circleMarker([g.lat, g.lon], {
        renderer: canvas,
        radius: n === 1 ? 5 : Math.min(16, 6 + 2 * Math.log2(n)),
        color: "#ffffff",
        weight: 1.5,
        fillColor: colour,
        fillOpacity: n === 1 ? 0.95 : 0.7
      });
      marker.cityosMembers = g.members;
      if (n === 1) {
        var p = g.members[0].properties;
        marker.bindTooltip(label(p) + (address(p) ? " — " + address(p) : ""));
      } else {
        marker.bindTooltip(words.cluster.replace("{count}", String(n)));
        marker.on("click", function () {
          map.setView([g.lat, g.lon], Math.min(map.getZoom() + 2, map.getMaxZoom()));
        });
      }
      layer.addLayer(marker);
    });
  }

  function redrawAll() {
    config.layers.forEach(function (l, i) {
      if (pointLayers[l.id]) {
        drawPoints(l.id, POINT_COLOURS[i % POINT_COLOURS.length]);
      }
    });
  }

  function loadPoints(layerConfig, index) {
    pointLayers[layerConfig.id] = L.layerGroup().addTo(map);
    return getJSON(layerConfig.points).then(function (collection) {
      points[layerConfig.id] = readPoints(collection);
      drawPoints(layerConfig.id, POINT_COLOURS[index % POINT_COLOURS.length]);
    });
  }

  function toggle(layer, on) {
    if (!layer) {
      return;
    }
    if (on) {
      layer.addTo(map);
    } else {
      map.removeLayer(layer);
    }
  }

  if (controls) {
    controls.addEventListener("change", function (event) {
      var target = event.target;
      if (target.id === "cityos-map-choropleth") {
        state.choropleth = target.value;
        loadChoropleth();
        return;
      }
      var kind = target.getAttribute("data-layer");
      if (kind === "wards") {
        toggle(wardsLayer, target.checked);
      } else if (kind === "choropleth") {
        toggle(choroplethLayer, target.checked);
        if (choroplethLayer && target.checked) {
          choroplethLayer.bringToBack();
        }
        document.getElementById("cityos-map-legend").hidden = !target.checked;
      } else if (kind === "points") {
        toggle(pointLayers[target.getAttribute("data-dataset")], target.checked);
      }
    });
  }

  map.on("zoomend", function () {
    redrawAll();
    // Settled zoom level, for tests and assistive scripts (set once an animated zoom has ended).
    element.setAttribute("data-zoom", String(map.getZoom()));
  });

  var ready = getJSON(config.wardsUrl)
    .then(drawWards)
    .catch(function () {
      /* no wards loaded: the points still draw, on a blank background */
    })
    .then(function () {
      return Promise.all([loadChoropleth()].concat(config.layers.map(loadPoints)));
    })
    .then(function () {
      element.setAttribute("data-zoom", String(map.getZoom()));
      element.setAttribute("data-ready", "true");
    });

  window.cityosMap = {
    map: map,
    ready: ready,
    points: points,
    wardCounts: function () {
      return wardCounts;
    },
    // Every record drawn for a dataset (whatever group it is in at this zoom), read from its layer.
    drawnRecords: function (id) {
      var drawn = [];
      var layer = pointLayers[id];
      if (!layer || !map.hasLayer(layer)) {
        return drawn;
      }
      layer.eachLayer(function (marker) {
        var at = marker.getLatLng();
        marker.cityosMembers.forEach(function (m) {
          drawn.push({ lat: m.lat, lon: m.lon, group: [at.lat, at.lng], properties: m.properties });
        });
      });
      return drawn;
    },
    // Groups and draws every dataset again at the current zoom; the milliseconds it took.
    redraw: function () {
      var started = performance.now();
      redrawAll();
      return performance.now() - started;
    },
    drawnMarkers: function (id) {
      var layer = pointLayers[id];
      return layer ? layer.getLayers().length : 0;
    }
  };
})();

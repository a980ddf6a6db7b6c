"""The Embedding map's hover photos: the server's thumbnail route and the tooltip beside the chart.

Streamlit's plotly chart sends Python no hover events, and plotly's hover labels hold text only.
So the dashboard server answers `GET <base>/petlab/map-photo/<job>/<row>` with a small JPEG of
point `row` of the finished map of embedding job `job` (core.embeddings.photos: that point's own
image, from the run's data source; 404 for anything else), a route of app.py's st.App (`routes`);
and a tiny component (st.components.v2; its JavaScript runs in the page itself) listens to the
chart's plotly_hover / plotly_unhover events and floats that thumbnail and the point's label
beside the cursor (`hover_photos`). A thumbnail is fetched once the cursor rests on a point, and
the browser keeps it (Cache-Control; the URL names the map file's version). When the route does
not answer, the tooltip shows the label alone.

app.py imports this module when the server starts, before the warm-up (ui/warmup.py): nothing of
PetLab is imported here until the first thumbnail is asked for.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from streamlit import config
from streamlit.url_util import make_url_path

from ui import warmup

if TYPE_CHECKING:
    from core.runs.store import RunStore

PHOTO_PATH = "petlab/map-photo"
CACHED = "private, max-age=86400"  # a URL names one map file's version: its photo never changes
DELAY_MS = 60  # a thumbnail not yet loaded is asked for once the cursor rests this long on a point


def photo_prefix() -> str:
    """The thumbnails' URL path up to the job id, below the server's base URL path."""
    return make_url_path(config.get_option("server.baseUrlPath") or "", PHOTO_PATH)


def routes() -> list[Route]:
    """The routes app.py's st.App adds to the dashboard server: the map thumbnails."""
    return [Route(photo_prefix() + "/{job_id:int}/{row:int}", map_photo, methods=["GET"])]


def map_photo(request: Request) -> Response:
    """The JPEG thumbnail of a map point (cached by the browser), or 404 when there is none to show."""
    body = photo_jpeg(request.path_params["job_id"], request.path_params["row"])
    if body is None:
        return Response("No such map photo.", 404, headers={"Cache-Control": "no-store"})
    return Response(body, media_type="image/jpeg", headers={"Cache-Control": CACHED})


def photo_jpeg(job_id: int, row: int) -> bytes | None:
    """JPEG bytes of point `row` of embedding job `job_id`'s map in the dashboard's workspace, or None.

    None for another kind of job, an unfinished or missing job or map, a row it does not have, data
    outside the data roots, or an image that changed since the map.
    """
    warmup.wait()  # never import PetLab's modules while the server-start warm-up imports them
    from core.embeddings.photos import jpeg_bytes, point_thumbnail
    from core.errors import PetLabError
    from ui import state

    try:
        image = point_thumbnail(_store(state.workspace()), job_id, row, state.data_roots())
    except (PetLabError, OSError):
        return None
    return jpeg_bytes(image)


@functools.lru_cache(maxsize=2)
def _store(workspace: Path) -> RunStore:
    from core.runs.store import RunStore  # on first use: not at server start

    return RunStore(workspace)


def hover_photos(chart: str, job_id: int, version: int) -> None:
    """Mount the tooltip that shows each hovered point's photo and label on the plotly chart keyed `chart`.

    The chart draws the map of embedding job `job_id`; each point's customdata is its row and its
    hovertext its label. `version` changes whenever the map file does (core.embeddings.photos.map_version).
    """
    data = {"chart": chart, "base": f"{photo_prefix()}/{int(job_id)}/", "query": f"?v={int(version)}"}
    _tooltip()(key=f"{chart}_photos", data=data, width="content")


@functools.cache
def _tooltip():
    """The tooltip component, registered once per process (when a page first mounts it)."""
    return st.components.v2.component("petlab_map_photo", js=TOOLTIP_JS.replace("DELAY_MS", str(DELAY_MS)))


# Runs in the page's own document (not an iframe), so it can reach the chart's plotly div. Streamlit
# calls the default export again whenever `data` changes and keeps only the last cleanup, so each
# chart's tooltip lives in a module-level map and every call only reconfigures it. Text goes in
# with textContent, never as HTML.
TOOLTIP_JS = """
const tooltips = new Map();
const HIDE_PLOTLY_LABEL = "petlab-map-photo-chart";
const SIDE = 160;

function addStyle() {
  if (document.getElementById("petlab-map-photo-style")) return;
  const style = document.createElement("style");
  style.id = "petlab-map-photo-style";
  style.textContent = `.${HIDE_PLOTLY_LABEL} .hoverlayer .hovertext { display: none; }`;
  document.head.append(style);
}

function tooltipElement() {
  const tip = document.createElement("div");
  tip.className = "petlab-map-photo";
  tip.setAttribute("role", "tooltip");
  Object.assign(tip.style, {
    position: "fixed", zIndex: "100000", display: "none", pointerEvents: "none", maxWidth: "240px",
    background: "#ffffff", color: "#1f2933", border: "1px solid #d5d9de", borderRadius: "6px",
    padding: "6px", boxShadow: "0 4px 14px rgba(0, 0, 0, 0.18)", fontSize: "13px", lineHeight: "1.3",
  });
  const img = document.createElement("img");
  img.alt = "";
  Object.assign(img.style, {
    display: "block", width: `${SIDE}px`, height: `${SIDE}px`, objectFit: "contain",
    background: "#f4f1ec", borderRadius: "4px", marginBottom: "4px",
  });
  const label = document.createElement("div");
  label.style.overflowWrap = "anywhere";
  tip.append(img, label);
  document.body.append(tip);
  return { tip, img, label };
}

function tooltip(chart) {
  const { tip, img, label } = tooltipElement();
  const charts = new Set();
  const loaded = new Set();
  let config = {};
  let row = null;
  let timer = 0;
  let x = 0;
  let y = 0;

  const place = () => {
    const gap = 16;
    let left = x + gap;
    let top = y + gap;
    if (left + tip.offsetWidth > window.innerWidth - 4) left = x - gap - tip.offsetWidth;
    if (top + tip.offsetHeight > window.innerHeight - 4) top = y - gap - tip.offsetHeight;
    tip.style.left = `${Math.max(4, left)}px`;
    tip.style.top = `${Math.max(4, top)}px`;
  };
  const hide = () => {
    clearTimeout(timer);
    tip.style.display = "none";
    row = null;
  };
  const photo = (point) => {
    clearTimeout(timer);
    img.removeAttribute("src");
    if (!Number.isInteger(point) || point < 0 || !config.base) {
      img.style.display = "none";
      return;
    }
    const url = `${config.base}${point}${config.query || ""}`;
    const load = () => {
      img.dataset.url = url;
      img.src = url;
    };
    img.style.display = "block";
    if (loaded.has(url)) load();
    else timer = setTimeout(load, DELAY_MS);
  };
  const onHover = (event) => {
    const point = event && event.points && event.points[0];
    if (!point) return;
    const data = Array.isArray(point.customdata) ? point.customdata[0] : point.customdata;
    const texts = point.data && point.data.hovertext;
    const text = point.hovertext ?? (Array.isArray(texts) ? texts[point.pointIndex] : "");
    if (event.event && typeof event.event.clientX === "number") {
      x = event.event.clientX;
      y = event.event.clientY;
    }
    label.textContent = String(text ?? "");
    tip.style.display = "block";
    const next = Number(data);
    if (next !== row) {
      row = next;
      photo(next);
    }
    place();
  };
  const onMove = (event) => {
    x = event.clientX;
    y = event.clientY;
    if (tip.style.display !== "none") place();
  };
  img.addEventListener("load", () => {
    loaded.add(img.dataset.url);
    place();
  });
  img.addEventListener("error", () => {
    if (img.getAttribute("src")) img.style.display = "none";
    place();
  });

  const attach = () => {
    const selector = `.st-key-${CSS.escape(chart)} .js-plotly-plot`;
    for (const plot of document.querySelectorAll(selector)) {
      if (charts.has(plot) || typeof plot.on !== "function") continue;
      charts.add(plot);
      plot.classList.add(HIDE_PLOTLY_LABEL);
      plot.on("plotly_hover", onHover);
      plot.on("plotly_unhover", hide);
      plot.addEventListener("mousemove", onMove);
      plot.addEventListener("mouseleave", hide);
    }
    for (const plot of charts) if (!plot.isConnected) charts.delete(plot);
  };
  let pending = false;
  const observer = new MutationObserver(() => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; attach(); });
  });
  observer.observe(document.body, { childList: true, subtree: true });

  return {
    configure(data) {
      config = data;
      attach();
    },
    dispose() {
      observer.disconnect();
      clearTimeout(timer);
      for (const plot of charts) {
        plot.classList.remove(HIDE_PLOTLY_LABEL);
        plot.removeListener?.("plotly_hover", onHover);
        plot.removeListener?.("plotly_unhover", hide);
        plot.removeEventListener("mousemove", onMove);
        plot.removeEventListener("mouseleave", hide);
      }
      tip.remove();
    },
  };
}

export default function ({ data }) {
  if (!data || !data.chart) return;
  addStyle();
  let entry = tooltips.get(data.chart);
  if (!entry) {
    entry = tooltip(data.chart);
    tooltips.set(data.chart, entry);
  }
  entry.configure(data);
  return () => {
    if (tooltips.get(data.chart) === entry) tooltips.delete(data.chart);
    entry.dispose();
  };
}
"""

// Small DOM helpers. Data only ever reaches the page through textContent and attributes
// (never innerHTML), so a policy named "<img src=x onerror=...>" is shown as text.

// h("button", {class: "primary", onclick: fn, "aria-label": "Add"}, "text", childNode, ...)
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

let seq = 0;
export function uid(prefix) {
  seq += 1;
  return `${prefix}-${seq}`;
}

// A date as the operator's locale shows it; "—" when absent.
export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString();
}

// Announce a message to screen readers (and show it) in the status region.
export function announce(text, kind = "info") {
  const el = document.getElementById("status");
  if (!el) return;
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = !text;
}

// A tab list (WAI-ARIA tabs pattern): arrow keys move between tabs, Enter/Space or click
// select.  tabs: [{id, label, panel: Node}].  Returns {el, select(id)}.
export function tabs(label, list, onSelect) {
  const bar = h("div", { role: "tablist", "aria-label": label, class: "tabs" });
  const panels = h("div", { class: "tab-panels" });
  const buttons = [];
  function select(id, focus) {
    for (const t of list) {
      const on = t.id === id;
      t.button.setAttribute("aria-selected", on ? "true" : "false");
      t.button.tabIndex = on ? 0 : -1;
      t.panel.hidden = !on;
      if (on && focus) t.button.focus();
    }
    if (onSelect) onSelect(id);
  }
  list.forEach((t, i) => {
    const tabId = uid("tab");
    const panelId = uid("panel");
    t.button = h("button", {
      type: "button", role: "tab", id: tabId, "aria-controls": panelId,
      "data-tab": t.id, class: "tab",
      onclick: () => select(t.id, true),
      onkeydown: (e) => {
        let j = null;
        if (e.key === "ArrowRight") j = (i + 1) % list.length;
        else if (e.key === "ArrowLeft") j = (i - 1 + list.length) % list.length;
        else if (e.key === "Home") j = 0;
        else if (e.key === "End") j = list.length - 1;
        if (j !== null) { e.preventDefault(); select(list[j].id, true); }
      },
    }, t.label);
    const wrap = h("div", { role: "tabpanel", id: panelId, "aria-labelledby": tabId, class: "tab-panel" }, t.panel);
    t.panel = wrap;
    buttons.push(t.button);
    bar.append(t.button);
    panels.append(wrap);
  });
  select(list[0].id, false);
  return { el: h("div", { class: "tabset" }, bar, panels), select };
}

/*
 * status_html.h - the status page served at GET / by server.c: one inline
 * HTML document, no external assets (the service may run where nothing
 * else is reachable). Its script polls /v1/plugins, /readyz and /healthz
 * every 2 s and updates the table in place; plugin data is written with
 * textContent only, never as HTML (versions come from plugin.json).
 * The page itself holds no data and is open; when /v1/plugins asks for a
 * token (docs/http-api.md#access-control) a field takes one, kept in this
 * tab's sessionStorage only and sent as a Bearer token to /v1/plugins.
 * Included by server.c only.
 */
#ifndef TXS_STATUS_HTML_H
#define TXS_STATUS_HTML_H

/* Pieces, each under the 4095 characters ISO C promises for one string
 * literal; server.c joins them once at start. */
static const char *const STATUS_HTML[] = {
    "<!doctype html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>txscan</title>\n"
    "<style>\n"
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d232a;background:#f6f7f9}\n"
    "h1{font-size:1.3rem;margin:0 0 .3rem}\n"
    ".bar{display:flex;gap:1rem;align-items:center;margin-bottom:1rem;flex-wrap:wrap}\n"
    ".badge{padding:.15rem .6rem;border-radius:1rem;font-weight:600;color:#fff;background:#888}\n"
    ".ok{background:#1f8a4c}.bad{background:#c0392b}.warn{background:#b9770e}\n"
    "table{border-collapse:collapse;background:#fff;box-shadow:0 1px 3px #0002;min-width:60%}\n"
    "th,td{padding:.35rem .7rem;border-bottom:1px solid #e3e6ea;text-align:right}\n"
    "th{background:#eef1f4;font-weight:600}\n"
    "td:first-child,th:first-child,td:nth-child(2),th:nth-child(2){text-align:left}\n"
    "td.num{font-variant-numeric:tabular-nums}\n"
    "td:first-child{white-space:nowrap}\n"
    "td.text{text-align:left;max-width:28rem;overflow-wrap:anywhere}\n"
    "#err{color:#c0392b}\n"
    "small{color:#5b6670}\n"
    "</style></head><body>\n",
    /* ---- body ---- */
    "<h1>txscan</h1>\n"
    "<div class=\"bar\">\n"
    "<span>health <span id=\"health\" class=\"badge\">&hellip;</span></span>\n"
    "<span>ready <span id=\"ready\" class=\"badge\">&hellip;</span></span>\n"
    "<small id=\"meta\"></small>\n"
    "<small id=\"updated\"></small>\n"
    "<span id=\"err\"></span>\n"
    "<form id=\"tok\" hidden><input id=\"tokin\" type=\"password\" autocomplete=\"off\"\n"
    "  placeholder=\"admin or scan token\"> <button>use</button></form>\n"
    "</div>\n"
    "<table id=\"plugins\"><thead><tr>\n"
    "<th>plugin</th><th>version</th><th>instances</th><th>generation</th><th>scans</th>\n"
    "<th>ok</th><th>errors</th><th>timeouts</th><th>memory</th><th>overloaded</th>\n"
    "<th>restarts</th><th>queue</th><th>state</th><th>failures (1 min)</th>\n"
    "<th>last error</th>\n"
    "</tr></thead><tbody id=\"rows\"></tbody></table>\n"
    "<p><small>Refreshed every 2 s from <a href=\"/v1/plugins\">/v1/plugins</a>; "
    "<a href=\"/metrics\">/metrics</a> has the rest.</small></p>\n"
    "<script>\n",
    /* ---- script: failures ---- */
    "'use strict';\n"
    "const COLS=['id','version','instances','generation','scans','ok','errors','timeouts',\n"
    "  'memory_stops','overloaded','restarts','queue_depth','state','failures','last_error'];\n"
    "const TEXT=new Set(['id','version','state','failures','last_error']);\n"
    "function failures(p){const m=p.failures_last_minute;if(!m||typeof m!=='object')return '';\n"
    "  const parts=[];for(const k in m)if(num(m[k]))parts.push(num(m[k])+' '+k);\n"
    "  return parts.length?parts.join(', '):'0';}\n"
    "function lastError(p){const e=p.last_error;if(!e||typeof e!=='object')return '';\n"
    "  const when=e.time?new Date(e.time).toLocaleTimeString():'';\n"
    "  return String(e.status)+': '+String(e.message)+(e.tx?' (tx '+String(e.tx)+')':'')+\n"
    "    (when?' at '+when:'');}\n",
    /* ---- script ---- */
    "function stat(p,k){const s=p.stats||{};return s[k]!==undefined?s[k]:p[k];}\n"
    "function num(v){return typeof v==='number'?v:(v==null?0:Number(v)||0);}\n"
    "function restarts(p){const s=p.stats||p;let t=0;\n"
    "  if(s.restarts&&typeof s.restarts==='object'){for(const k in s.restarts)t+=num(s.restarts[k]);return t;}\n"
    "  for(const k of ['restarts_scheduled','restarts_heap','restarts_killed','restarts_manual'])t+=num(s[k]);\n"
    "  return t;}\n"
    "function value(p,c){\n"
    "  if(c==='id'||c==='version')return String(p[c]==null?'':p[c]);\n"
    "  if(c==='restarts')return restarts(p);\n"
    "  if(c==='failures')return failures(p);\n"
    "  if(c==='last_error')return lastError(p);\n"
    "  if(c==='state'){if(stat(p,'quarantined'))return 'quarantined';\n"
    "    const run=stat(p,'running');\n"
    "    return run===false||num(stat(p,'generation'))===0?'not running':'running';}\n"
    "  if(c==='instances')return num(p.instances!==undefined?p.instances:stat(p,c));\n"
    "  return num(stat(p,c));}\n"
    "function row(id){let tr=document.querySelector('tr[data-id=\"'+CSS.escape(id)+'\"]');\n"
    "  if(!tr){tr=document.createElement('tr');tr.dataset.id=id;\n"
    "    for(const c of COLS){const td=document.createElement('td');td.dataset.col=c;\n"
    "      td.className=c==='last_error'?'text':TEXT.has(c)?'':'num';tr.appendChild(td);}\n"
    "    document.getElementById('rows').appendChild(tr);}\n"
    "  return tr;}\n"
    "function render(list){const seen=new Set();\n"
    "  for(const p of list){const id=String(p.id);seen.add(id);const tr=row(id);\n"
    "    for(const td of tr.children){const v=String(value(p,td.dataset.col));\n"
    "      if(td.textContent!==v)td.textContent=v;}}\n"
    "  for(const tr of [...document.querySelectorAll('#rows tr')])\n"
    "    if(!seen.has(tr.dataset.id))tr.remove();}\n"
    "function badge(id,text,cls){const e=document.getElementById(id);e.textContent=text;\n"
    "  e.className='badge '+cls;}\n"
    "const TOK='txscan-token';\n"
    "document.getElementById('tok').addEventListener('submit',ev=>{ev.preventDefault();\n"
    "  sessionStorage.setItem(TOK,document.getElementById('tokin').value.trim());refresh();});\n"
    "async function getJSON(url,auth){const t=auth&&sessionStorage.getItem(TOK);\n"
    "  const r=await fetch(url,{cache:'no-store',headers:t?{Authorization:'Bearer '+t}:{}});\n"
    "  let body=null;try{body=await r.json();}catch(e){}return {status:r.status,body};}\n"
    "async function refresh(){\n"
    "  try{\n"
    "    const [pl,rd,hz]=await Promise.all([getJSON('/v1/plugins',true),getJSON('/readyz'),\n"
    "      getJSON('/healthz')]);\n"
    "    if(pl.status===200&&Array.isArray(pl.body))render(pl.body);\n"
    "    const locked=pl.status===401||pl.status===403;\n"
    "    document.getElementById('tok').hidden=!locked;\n"
    "    badge('health',hz.status===200?'ok':'down',hz.status===200?'ok':'bad');\n"
    "    const why=rd.body&&rd.body.reason?' ('+rd.body.reason+')':'';\n"
    "    const deg=rd.body&&Array.isArray(rd.body.degraded)?rd.body.degraded.map(d=>d.id):[];\n"
    "    badge('ready',rd.status!==200?'not ready'+why:deg.length?'ready, degraded: '+deg.join(', '):\n"
    "      'ready',rd.status===200&&!deg.length?'ok':'warn');\n"
    "    if(hz.body)document.getElementById('meta').textContent='version '+hz.body.version+\n"
    "      ', up '+Math.round(hz.body.uptime_s)+' s';\n"
    "    document.getElementById('updated').textContent='updated '+\n"
    "      new Date().toLocaleTimeString();\n"
    "    document.getElementById('err').textContent=locked?'/v1/plugins: '+\n"
    "      (pl.body&&pl.body.error||pl.status):'';\n"
    "  }catch(e){badge('health','unreachable','bad');\n"
    "    document.getElementById('err').textContent=String(e);}\n"
    "}\n"
    "refresh();setInterval(refresh,2000);\n"
    "</script>\n"
    "</body></html>\n",
};

#endif

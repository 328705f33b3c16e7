#include "workers/bridge/openapi.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "shared/contract.h"
#include "shared/routes.h"

static const char *auth_name(enum br_auth a)
{
    switch (a) {
    case BR_ANYONE:
        return "anyone";
    case BR_USER:
        return "user";
    case BR_STAFF:
        return "staff";
    case BR_STAFF_OR_SERVICE:
        return "staff_or_service";
    }
    return "anyone";
}

static void lower(const char *s, char *out, size_t n)
{
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[i] = '\0';
}

/* The command when no other row has it; else "<command>.<method>" when the
 * methods tell the rows apart (PUT/PATCH of one *.update); else the first
 * row keeps the command and later ones get ".2", ".3"... */
static void operation_id(const struct br_route *r, char *out, size_t n)
{
    int same = 0, same_method = 0, earlier = 0;
    for (const struct br_route *q = br_routes; q->method; q++) {
        if (q == r || strcmp(q->command, r->command) != 0)
            continue;
        same++;
        if (strcmp(q->method, r->method) == 0) {
            same_method++;
            if (q < r)
                earlier++;
        }
    }
    if (same == 0) {
        snprintf(out, n, "%s", r->command);
    } else if (same_method == 0) {
        char m[16];
        lower(r->method, m, sizeof m);
        snprintf(out, n, "%s.%s", r->command, m);
    } else if (earlier == 0) {
        snprintf(out, n, "%s", r->command);
    } else {
        snprintf(out, n, "%s.%d", r->command, earlier + 1);
    }
}

/* Appends one parameter object per comma-separated name in list. */
static void add_params(json_t *params, const char *list, const char *in, bool required)
{
    while (list && *list) {
        size_t k = strcspn(list, ",");
        json_array_append_new(params,
                              json_pack("{s:s%, s:s, s:b, s:{s:s}}", "name", list, k, "in", in,
                                        "required", required, "schema", "type", "string"));
        list += k;
        if (*list == ',')
            list++;
    }
}

static json_t *field_schema(const char *fields, const char *upload)
{
    json_t *props = json_object();
    for (const char *f = fields; f && *f;) {
        size_t k = strcspn(f, ",");
        json_object_setn_new(props, f, k, json_object());
        f += k;
        if (*f == ',')
            f++;
    }
    if (upload)
        json_object_set_new(props, upload,
                            json_pack("{s:s, s:s}", "type", "string", "format", "binary"));
    return json_pack("{s:s, s:o}", "type", "object", "properties", props);
}

static json_t *operation(const struct br_route *r)
{
    char id[96];
    operation_id(r, id, sizeof id);
    bool local = r->flags & BR_LOCAL;
    const char *dot = strchr(r->command, '.');
    json_t *op = json_pack("{s:s, s:s, s:[s%]}", "operationId", id, "summary", r->summary, "tags",
                           local ? "bridge" : r->command,
                           local ? strlen("bridge") : (size_t)(dot - r->command));
    if (!local)
        json_object_set_new(op, "x-command", json_string(r->command));
    json_object_set_new(op, "x-auth", json_string(auth_name(r->auth)));
    json_object_set_new(op, "security",
                        r->auth == BR_ANYONE ? json_array() : json_pack("[{s:[]}]", "bearerAuth"));

    json_t *params = json_array();
    for (const char *p = strchr(r->pattern, '{'); p; p = strchr(p + 1, '{')) {
        size_t k = strcspn(p + 1, "}");
        json_array_append_new(params, json_pack("{s:s%, s:s, s:b, s:{s:s}}", "name", p + 1, k, "in",
                                                "path", "required", 1, "schema", "type", "string"));
    }
    char q[256] = "";
    bk_contract_names(bk_contract_command(r->command), BK_F_QUERY, 0, q, sizeof q);
    add_params(params, q, "query", false);
    if (r->flags & BR_RAW)
        add_params(params, "If-None-Match", "header", false);
    if (strcmp(r->method, "GET") != 0)
        add_params(params, "Idempotency-Key", "header", false);
    json_object_set_new(op, "parameters", params);

    bool writes = strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0 ||
                  strcmp(r->method, "PATCH") == 0;
    char body[512] = "";
    const struct bk_command_decl *d = bk_contract_command(r->command);
    const struct bk_field *file = d ? bk_contract_file(d) : NULL;
    bk_contract_names(d, 0, BK_F_HEADER, body, sizeof body);
    const char *upload = file && (r->flags & BR_MULTIPART) ? file->name : NULL;
    if (writes || *body || upload) {
        json_t *content = json_object();
        json_object_set_new(content, "application/json",
                            json_pack("{s:o}", "schema", field_schema(body, NULL)));
        if (upload)
            json_object_set_new(content, "multipart/form-data",
                                json_pack("{s:o}", "schema", field_schema(body, upload)));
        json_object_set_new(op, "requestBody",
                            json_pack("{s:b, s:o}", "required", 0, "content", content));
    }

    json_t *responses = json_object();
    char code[8];
    snprintf(code, sizeof code, "%d", r->status);
    if (r->flags & BR_RAW) {
        json_object_set_new(responses, code,
                            json_pack("{s:s, s:{s:{s:{s:s, s:s}}}}", "description",
                                      "The file's bytes", "content", "*/*", "schema", "type",
                                      "string", "format", "binary"));
        json_object_set_new(responses, "304", json_pack("{s:s}", "description", "Not modified"));
    } else {
        json_object_set_new(responses, code, json_pack("{s:s}", "description", "Success"));
    }
    if (!local) {
        if (writes || *body)
            json_object_set_new(responses, "400",
                                json_pack("{s:s}", "description", "Invalid input"));
        if (r->auth != BR_ANYONE)
            json_object_set_new(responses, "401",
                                json_pack("{s:s}", "description", "Not authenticated"));
        if (r->auth == BR_STAFF || r->auth == BR_STAFF_OR_SERVICE)
            json_object_set_new(responses, "403",
                                json_pack("{s:s}", "description", "Not permitted"));
        json_object_set_new(responses, "503",
                            json_pack("{s:s}", "description", "No worker for the command"));
        json_object_set_new(responses, "504",
                            json_pack("{s:s}", "description", "No reply in time"));
    }
    json_object_set_new(op, "responses", responses);
    return op;
}

char *br_openapi_json(void)
{
    json_t *paths = json_object();
    for (const struct br_route *r = br_routes; r->method; r++) {
        json_t *item = json_object_get(paths, r->pattern);
        if (!item) {
            item = json_object();
            json_object_set_new(paths, r->pattern, item);
        }
        char m[16];
        lower(r->method, m, sizeof m);
        json_object_set_new(item, m, operation(r));
    }
    json_t *doc = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:[{s:s}], s:o, s:{s:{s:{s:s, s:s, s:s}}}}", "openapi", "3.0.3",
        "info", "title", "Backend API", "version", "1.0.0", "description",
        "HTTP bridge to the backend's workers. Each operation is a command on RabbitMQ "
        "(x-command). Paths work with or without their trailing slash. POST, PUT, PATCH and "
        "DELETE accept an Idempotency-Key header (1-255 printable characters). Every response "
        "carries X-Request-ID.",
        "servers", "url", "/", "paths", paths, "components", "securitySchemes", "bearerAuth",
        "type", "http", "scheme", "bearer", "bearerFormat", "JWT");
    if (!doc)
        return NULL;
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

/* The page builds everything with textContent: nothing from the document is
 * parsed as HTML. */
const char br_openapi_docs_html[] =
    "<!doctype html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>API docs</title>\n"
    "<style>\n"
    "body{font:14px/1.4 system-ui,sans-serif;margin:0 "
    "auto;max-width:960px;padding:1em;color:#222}\n"
    "h1{font-size:1.4em}details{border:1px solid #ddd;border-radius:4px;margin:.4em 0}\n"
    "summary{cursor:pointer;padding:.4em .6em;font-family:monospace}\n"
    ".m{display:inline-block;width:4.5em;font-weight:bold}.GET{color:#1565c0}.POST{color:#2e7d32}\n"
    ".PUT{color:#ef6c00}.PATCH{color:#6a1b9a}.DELETE{color:#c62828}\n"
    ".cmd{color:#777;margin-left:1em}.auth{color:#999;margin-left:.5em;font-size:.9em}\n"
    "form{padding:.4em .8em}label{display:block;margin:.3em 0}input[type=text]{width:20em}\n"
    "textarea{width:100%;height:7em;font-family:monospace}\n"
    "pre{background:#f6f6f6;padding:.6em;overflow:auto;max-height:24em;white-space:pre-wrap}\n"
    "#tok{width:100%}\n"
    "</style></head><body>\n"
    "<h1 id=\"title\">API</h1><p id=\"desc\"></p>\n"
    "<label>Bearer token (access): <input id=\"tok\" type=\"text\" autocomplete=\"off\"></label>\n"
    "<div id=\"ops\">Loading /api/openapi.json ...</div>\n"
    "<script>\n"
    "'use strict';\n"
    "const $=(t,a={},...k)=>{const e=document.createElement(t);for(const[n,v]of "
    "Object.entries(a)){if(n==='text')e.textContent=v;else e.setAttribute(n,v)}"
    "for(const c of k)e.append(c);return e};\n"
    "const tok=document.getElementById('tok');tok.value=localStorage.getItem('token')||'';\n"
    "tok.onchange=()=>localStorage.setItem('token',tok.value.trim());\n"
    "function example(op){const c=op.requestBody&&op.requestBody.content['application/json'];"
    "if(!c)return '';const o={};for(const k of Object.keys(c.schema.properties||{}))o[k]='';"
    "return JSON.stringify(o,null,2)}\n"
    "function form(path,method,op){\n"
    " const f=$('form');const inputs={};const ps=op.parameters||[];\n"
    " for(const p of ps){if(p.in==='header')continue;const i=$('input',{type:'text',name:p.name});"
    "inputs[p.name]=[p,i];f.append($('label',{},p.name+' ('+p.in+(p.required?', required':'')+"
    "'): ',i))}\n"
    " let body=null,file=null;const "
    "mp=op.requestBody&&op.requestBody.content['multipart/form-data'];\n"
    " if(op.requestBody){body=$('textarea');body.value=example(op);f.append($('label',{},"
    "'JSON body:',body))}\n"
    " if(mp){for(const[k,v]of Object.entries(mp.schema.properties))if(v.format==='binary'){"
    "file=[k,$('input',{type:'file'})];f.append($('label',{},'or upload '+k+' (multipart, with "
    "the JSON fields as form fields): ',file[1]))}}\n"
    " const idem=$('input',{type:'text'});if(method!=='get')f.append($('label',{},"
    "'Idempotency-Key: ',idem));\n"
    " const out=$('pre',{text:''});f.append($('button',{type:'submit'},'Send'),out);\n"
    " f.onsubmit=async ev=>{ev.preventDefault();let url=path;const q=new URLSearchParams();\n"
    "  for(const[n,[p,i]]of Object.entries(inputs)){const v=i.value;if(p.in==='path')"
    "url=url.replace('{'+n+'}',encodeURIComponent(v));else if(v!=='')q.append(n,v)}\n"
    "  if([...q].length)url+='?'+q;const h={};const t=tok.value.trim();"
    "if(t)h['Authorization']='Bearer '+t;\n"
    "  if(idem.value)h['Idempotency-Key']=idem.value;let b;\n"
    "  if(file&&file[1].files.length){b=new FormData();"
    "if(body&&body.value.trim()){try{for(const[k,v]of Object.entries(JSON.parse(body.value)))"
    "if(v!=='')b.append(k,v)}catch(e){out.textContent='body: '+e;return}}"
    "b.append(file[0],file[1].files[0])}\n"
    "  else if(body&&body.value.trim()){b=body.value;h['Content-Type']='application/json'}\n"
    "  out.textContent='...';try{const r=await fetch(url,{method:method.toUpperCase(),"
    "headers:h,body:b});\n"
    "   let s=r.status+' '+r.statusText+'\\n';for(const[k,v]of r.headers)s+=k+': '+v+'\\n';\n"
    "   const ct=r.headers.get('content-type')||'';const txt=ct.startsWith('application/json')?"
    "await r.text():'('+(await r.blob()).size+' bytes of '+ct+')';\n"
    "   let pretty=txt;try{pretty=JSON.stringify(JSON.parse(txt),null,2)}catch(e){}\n"
    "   out.textContent=s+'\\n'+pretty}catch(e){out.textContent=String(e)}};\n"
    " return f}\n"
    "fetch('/api/openapi.json').then(r=>r.json()).then(doc=>{\n"
    " document.getElementById('title').textContent=doc.info.title+' '+doc.info.version;\n"
    " document.getElementById('desc').textContent=doc.info.description||'';\n"
    " const ops=document.getElementById('ops');ops.textContent='';\n"
    " for(const[path,item]of Object.entries(doc.paths))for(const[method,op]of "
    "Object.entries(item)){\n"
    "  const s=$('summary',{},$('span',{class:'m '+method.toUpperCase(),"
    "text:method.toUpperCase()}),path,$('span',{class:'cmd',text:op['x-command']||''}),"
    "$('span',{class:'auth',text:op['x-auth']}));\n"
    "  const d=$('details',{},s,$('div',{text:op.summary||''}));"
    "d.addEventListener('toggle',()=>{if(d.open&&!d.dataset.f){d.dataset.f=1;"
    "d.append(form(path,method,op))}},{once:false});ops.append(d)}\n"
    "}).catch(e=>{document.getElementById('ops').textContent='Cannot load the API: '+e});\n"
    "</script></body></html>\n";

char *br_asyncapi_json(void)
{
    return strdup("{}");
}

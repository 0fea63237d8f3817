// `/signin`: exchange an API token for a session (an HttpOnly cookie the page cannot read).
import { h, field, select } from "../ui.js";
import * as api from "../api.js";
import { pageHeader } from "./common.js";

// Only a path of this app may follow a sign-in (never another site).
function safeNext(next) {
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/signin") ? next : "/";
}

export default {
  render(ctx) {
    const next = safeNext(ctx.get("next"));
    const names = ctx.access.map((w) => w.name);
    let chosen = ctx.workspace || names[0];
    const access = ctx.access.find((w) => w.name === chosen);
    ctx.main.append(pageHeader(ctx, "Sign in"));
    if (access && !access.auth_required) {
      ctx.main.append(h("p", {}, `Workspace ${chosen} needs no token. `, h("a", { href: ctx.link("/") }, "Open it"), "."));
      return;
    }
    const message = h("div", { class: "signin-message", role: "alert", "aria-live": "assertive" });
    const token = h("input", { type: "password", id: "token", name: "token", required: true, autocomplete: "current-password", spellcheck: "false" });
    const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
    const form = h("form", { class: "signin", onsubmit: async (event) => {
      event.preventDefault();
      message.replaceChildren();
      submit.disabled = true;
      try {
        await api.send("POST", "/api/v1/session", { token: token.value, workspace: chosen });
        token.value = "";
        await ctx.refreshAccess();
        api.setWorkspace(chosen, names.length > 1);
        const target = new URL(next, location.origin);
        if (names.length > 1) target.searchParams.set("workspace", chosen);
        ctx.navigate(target.pathname + target.search, { replace: true });
      } catch (error) {
        message.replaceChildren(h("p", { class: "error" }, error.status === 401 ? `Refused: ${error.message}.` : `Could not sign in: ${error.message}`));
        token.select();
      } finally {
        submit.disabled = false;
      }
    } },
    h("p", {}, "This workspace needs an API token (one of ", h("code", {}, "api_tokens"), " in its accountlens.toml). ",
      "The token is exchanged for a session cookie and is not stored in the browser."),
    names.length > 1 ? select("Workspace", names, chosen, (v) => { chosen = v; }, { id: "signin-workspace" }) : null,
    field("API token", token),
    submit, message);
    ctx.main.append(form);
    setTimeout(() => token.focus(), 0);
  },
};

// Sign in with a name and a password (POST /api/auth/login sets the session's cookies),
// then back to where the operator was sent from (?next=).

import { ApiError, request } from "../api.js";

export function mount(root, { route, signedIn }) {
  root.innerHTML = `
    <form class="login" autocomplete="on">
      <h1>Hongshan</h1>
      <label>Name <input name="username" autocomplete="username" required></label>
      <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
      <button type="submit">Sign in</button>
      <p class="error" role="alert" hidden></p>
    </form>`;
  const form = root.querySelector("form");
  const error = root.querySelector(".error");
  form.username.focus();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await request(
        "POST",
        "/api/auth/login",
        { username: form.username.value, password: form.password.value },
        { quiet401: true },
      );
      await signedIn(route.params.get("next"));
    } catch (problem) {
      error.textContent =
        problem instanceof ApiError && problem.status === 429
          ? `Too many attempts: ${problem.message}`
          : problem instanceof ApiError && problem.status === 401
            ? "Wrong name or password."
            : String(problem.message || problem);
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
}

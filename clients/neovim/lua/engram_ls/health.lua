-- :checkhealth engram_ls
local M = {}

function M.check()
  local health = vim.health
  local engram = require("engram_ls")
  health.start("engram-ls")
  if vim.fn.has("nvim-0.11") == 1 then
    health.ok("Neovim " .. tostring(vim.version()) .. " (vim.lsp.config / vim.lsp.enable)")
  elseif vim.fn.has("nvim-0.10") == 1 then
    health.warn("Neovim 0.10: using vim.lsp.start; 0.11+ is recommended")
  else
    health.error("Neovim 0.10 or newer is required")
  end
  local exe = engram.options.cmd[1]
  if vim.fn.executable(exe) ~= 1 then
    health.error("executable not found: " .. exe, { "install it from a checkout (clients/neovim/README.md), then put it on PATH or set cmd in require('engram_ls').setup()" })
    return
  end
  local out = vim.fn.system({ exe, "--version" })
  if vim.v.shell_error == 0 then
    health.ok("executable: " .. vim.fn.exepath(exe) .. " (" .. vim.trim(out) .. ")")
  else
    health.error("`" .. exe .. " --version` failed: " .. vim.trim(out))
  end
  local cache = vim.env.ENGRAM_LS_CACHE
  if not cache then
    local base = vim.fn.has("mac") == 1 and (vim.env.HOME .. "/Library/Caches") or vim.env.XDG_CACHE_HOME
      or (vim.env.HOME .. "/.cache")
    cache = base .. "/engram-ls"
  end
  health.info("store location: " .. cache .. "/stores")
  local models_dir = vim.env.ENGRAM_LS_MODELS or (cache .. "/models")
  local ggufs = vim.fn.glob(models_dir .. "/*.gguf", false, true)
  if #ggufs > 0 then
    health.ok("models found in " .. models_dir .. ": " .. table.concat(vim.tbl_map(vim.fs.basename, ggufs), ", "))
  else
    health.info("no assembled models in " .. models_dir .. " yet (the shipped model is assembled on first use)")
  end
  local client = engram.client()
  if not client then
    health.warn("engram-ls is not attached to any buffer yet (open a file inside a project)")
    return
  end
  local reply = engram.request_sync(client, "workspace/executeCommand", { command = "engram.status", arguments = {} }, 10000)
  if not reply or reply.err or not reply.result then
    health.error("engram.status failed: " .. vim.inspect(reply and reply.err))
    return
  end
  local status = reply.result
  health.ok("server " .. (status.version or "?") .. " running, position encoding " .. tostring(status.position_encoding))
  for root, info in pairs(status.index or {}) do
    health.ok(string.format("index %s: %d files, %d chunks%s, store %s", root, info.files or 0, info.chunks or 0,
      info.indexing and " (indexing)" or "", info.store_path or "?"))
  end
  local models = status.models or {}
  local found = false
  for role, pool in pairs(models) do
    if type(pool) == "table" and pool.model then
      found = true
      local line = string.format("%s model: %s (%d/%d workers alive)", role, pool.model, pool.alive or 0, pool.size or 0)
      if (pool.alive or 0) > 0 then
        health.ok(line)
      else
        health.warn(line)
      end
    end
  end
  if models.state == "unavailable" then
    health.error("models unavailable: " .. tostring(models.error),
      { "check settings.models / settings.backend, or run `engram-ls ask` in a terminal to see the error" })
  elseif models.state then
    health.info("model workers: " .. models.state .. " (they start on first use)")
  elseif not found then
    health.warn("models: " .. vim.inspect(models))
  end
end

return M

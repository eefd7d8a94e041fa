-- Drives the engram-ls Neovim plugin headless; writes what it saw to $ENGRAM_TEST_OUT as JSON.
local out_path = os.getenv("ENGRAM_TEST_OUT")
local plugin_dir = os.getenv("ENGRAM_PLUGIN_DIR")
local target = os.getenv("ENGRAM_TEST_FILE")
local results = { errors = {} }

local function save()
  local f = assert(io.open(out_path, "w"))
  f:write(vim.json.encode(results))
  f:close()
end

local function step(name, fn)
  local ok, err = pcall(fn)
  if not ok then
    results.errors[name] = tostring(err)
  end
end

local function wait(what, timeout, predicate)
  if not vim.wait(timeout, predicate, 50) then
    error("timed out waiting for " .. what)
  end
end

vim.opt.rtp:prepend(plugin_dir)
vim.cmd("filetype on")
vim.g.engram_ls_no_autostart = true
vim.cmd("runtime plugin/engram_ls.lua")
local engram = require("engram_ls")
engram.setup({
  cmd = { "engram-ls", "serve" },
  settings = vim.json.decode(os.getenv("ENGRAM_SETTINGS") or "{}"),
})

vim.cmd("edit " .. vim.fn.fnameescape(target))
local bufnr = vim.api.nvim_get_current_buf()

step("attach", function()
  wait("the client to attach", 30000, function() return engram.client(bufnr) ~= nil end)
  results.attached = true
  results.omnifunc = vim.bo[bufnr].omnifunc
end)

local client = engram.client(bufnr)

local function status()
  local reply = client:request_sync("workspace/executeCommand", { command = "engram.status", arguments = {} }, 10000, bufnr)
  return reply and reply.result
end

step("indexed", function()
  wait("indexing", 60000, function()
    local s = status()
    if not s then return false end
    for _, info in pairs(s.index or {}) do
      if info.indexing or (info.files or 0) == 0 then return false end
    end
    return next(s.index or {}) ~= nil
  end)
  results.status = status()
end)

local function position(line, col)
  return { textDocument = { uri = vim.uri_from_bufnr(bufnr) }, position = { line = line, character = col } }
end

step("hover", function()
  local replies = vim.lsp.buf_request_sync(bufnr, "textDocument/hover", position(14, 16), 30000)
  for _, r in pairs(replies or {}) do
    if r.result then results.hover = r.result.contents.value end
  end
end)

step("completion", function()
  local replies = vim.lsp.buf_request_sync(bufnr, "textDocument/completion", position(14, 8), 30000)
  results.completion = {}
  for _, r in pairs(replies or {}) do
    local items = r.result and (r.result.items or r.result) or {}
    for _, item in ipairs(items) do
      table.insert(results.completion, item.label)
    end
  end
end)

step("code_action", function()
  local params = { textDocument = { uri = vim.uri_from_bufnr(bufnr) },
                   range = { start = { line = 3, character = 0 }, ["end"] = { line = 3, character = 0 } },
                   context = { diagnostics = {} } }
  local replies = vim.lsp.buf_request_sync(bufnr, "textDocument/codeAction", params, 30000)
  local chosen
  results.actions = {}
  for _, r in pairs(replies or {}) do
    for _, action in ipairs(r.result or {}) do
      table.insert(results.actions, action.title)
      if action.title == "Engram: Add docstring" then chosen = action end
    end
  end
  local resolved = client:request_sync("codeAction/resolve", chosen, 30000, bufnr)
  vim.lsp.util.apply_workspace_edit(resolved.result.edit, client.offset_encoding)
  results.buffer_after_action = table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "\n")
end)

step("search", function()
  local done = false
  engram.search("download a web page", function() done = true end)
  wait("search", 30000, function() return done end)
  results.quickfix = {}
  for _, item in ipairs(vim.fn.getqflist()) do
    table.insert(results.quickfix, { file = vim.api.nvim_buf_get_name(item.bufnr), lnum = item.lnum, text = item.text })
  end
  vim.cmd("cclose")
end)

step("ask", function()
  local done = false
  engram.ask("How is the discount applied?", function() done = true end)
  wait("ask", 60000, function() return done end)
  results.ask_buffer = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n")
  results.ask_filetype = vim.bo.filetype
  -- jump from the first citation line
  local lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)
  for i, l in ipairs(lines) do
    if l:match("%(file://[^)]+#L%d+%)") then
      vim.api.nvim_win_set_cursor(0, { i, 0 })
      engram.jump_to_citation()
      results.jumped_to = { file = vim.api.nvim_buf_get_name(0), line = vim.api.nvim_win_get_cursor(0)[1] }
      break
    end
  end
end)

step("refactor", function()
  vim.cmd("buffer " .. bufnr)
  local before = table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "\n")
  local done = false
  local orig = vim.lsp.util.apply_workspace_edit
  vim.lsp.util.apply_workspace_edit = function(...) orig(...); done = true end
  engram.refactor("use a constant", { range = 2, line1 = 4, line2 = 8 }, true)
  wait("refactor", 30000, function() return done end)
  vim.lsp.util.apply_workspace_edit = orig
  results.refactor_changed = before ~= table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "\n")
  results.refactor_preview = vim.bo.filetype
end)

step("checkhealth", function()
  vim.cmd("checkhealth engram_ls")
  results.health = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n")
end)

step("commands", function()
  results.commands = vim.fn.getcompletion("Engram", "command")
  results.subcommands = vim.fn.getcompletion("Engram ", "cmdline")
end)

save()
vim.cmd("qa!")

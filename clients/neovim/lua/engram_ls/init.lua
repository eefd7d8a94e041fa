-- engram-ls for Neovim: a local, private AI code assistant over LSP.
-- Works with defaults (the plugin/ file enables it); setup(opts) only changes options.
local M = {}

M.defaults = {
  cmd = { "engram-ls", "serve", "--stdio" },
  filetypes = nil, -- nil: every filetype
  root_markers = { ".git", "pyproject.toml", "package.json", "Cargo.toml", "go.mod", ".engramignore" },
  settings = {}, -- the server's camelCase settings, e.g. { backend = { kind = "llama" }, completion = { maxTokens = 48 } }
  completion = true, -- built-in LSP completion (vim.lsp.completion) and omnifunc
  inline = true, -- vim.lsp.inline_completion where Neovim has it (0.12+)
  keymaps = false, -- true: <leader>ea ask, <leader>ee explain, <leader>er refactor, <leader>es search
  progress = true, -- show indexing progress ($/progress) in the command line; false if fidget.nvim or a statusline shows it
}
M.options = vim.deepcopy(M.defaults)
M.name = "engram_ls"

local function notify(msg, level)
  vim.notify("engram-ls: " .. msg, level or vim.log.levels.INFO)
end

--- The attached engram-ls client for a buffer (or any), or nil.
function M.client(bufnr)
  local clients = vim.lsp.get_clients({ name = M.name, bufnr = bufnr })
  if #clients == 0 then
    clients = vim.lsp.get_clients({ name = M.name })
  end
  return clients[1]
end

local function request(client, method, params, handler, bufnr)
  if vim.fn.has("nvim-0.11") == 1 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

--- Blocking request (for :checkhealth); the method-call style differs before 0.11.
function M.request_sync(client, method, params, timeout, bufnr)
  if vim.fn.has("nvim-0.11") == 1 then
    return client:request_sync(method, params, timeout, bufnr)
  end
  return client.request_sync(method, params, timeout, bufnr)
end

--- Runs an engram command; calls cb(err, result). Commands take one object argument. Every failure reaches the
--- user through vim.notify, named after what was asked (e.g. "search failed: …").
function M.execute(command, arg, cb, bufnr)
  local client = M.client(bufnr)
  local what = command:gsub("^engram%.", "")
  if not client then
    notify(what .. ": not attached to this buffer (see :checkhealth engram_ls)", vim.log.levels.WARN)
    return cb and cb({ message = "not attached" })
  end
  local params = { command = command, arguments = arg and { arg } or {} }
  request(client, "workspace/executeCommand", params, function(err, result)
    vim.schedule(function()
      if err then
        notify(what .. " failed: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      end
      if cb then
        cb(err, result)
      end
    end)
  end, bufnr)
end

--- 0-based first and last line of the symbol around the cursor: the enclosing function or class when a
--- tree-sitter parser is loaded, else the blank-line delimited block around the cursor.
local function symbol_lines()
  local ok, node = pcall(vim.treesitter.get_node)
  while ok and node do
    local kind = node:type()
    if kind:find("function") or kind:find("method") or kind:find("class") then
      local first, _, last = node:range()
      return first, last
    end
    node = node:parent()
  end
  local cursor = vim.api.nvim_win_get_cursor(0)[1]
  local above = vim.fn.search("^\\s*$", "bnW")
  local below = vim.fn.search("^\\s*$", "nW")
  local last = below == 0 and vim.api.nvim_buf_line_count(0) or below - 1
  return math.min(above, cursor - 1), math.max(last, cursor) - 1
end

local function selection_range(opts)
  local first, last
  if opts and opts.range and opts.range > 0 then
    first, last = opts.line1 - 1, opts.line2 - 1
  else
    first, last = symbol_lines()
  end
  local last_line = vim.api.nvim_buf_get_lines(0, last, last + 1, false)[1] or ""
  return { start = { line = first, character = 0 }, ["end"] = { line = last, character = #last_line } }
end

--- A scratch buffer showing Markdown; <CR> on a citation [path:line](file://...#Lline) jumps there.
function M.show_markdown(title, markdown)
  vim.cmd("botright new")
  local buf = vim.api.nvim_get_current_buf()
  vim.bo[buf].buftype = "nofile"
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].swapfile = false
  vim.bo[buf].filetype = "markdown"
  pcall(vim.api.nvim_buf_set_name, buf, "engram://" .. title:gsub("%s+", "_"):sub(1, 60) .. "#" .. buf)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, vim.split(markdown, "\n", { plain = true }))
  vim.bo[buf].modifiable = false
  vim.keymap.set("n", "<CR>", M.jump_to_citation, { buffer = buf, desc = "engram-ls: open citation" })
  return buf
end

--- Opens the citation under the cursor: the first file://...#L<line> link on the line.
function M.jump_to_citation()
  local line = vim.api.nvim_get_current_line()
  local uri, lnum = line:match("%((file://[^)#]+)#L(%d+)%)")
  if not uri then
    notify("no citation on this line", vim.log.levels.WARN)
    return
  end
  vim.cmd("wincmd p")
  vim.cmd("edit " .. vim.fn.fnameescape(vim.uri_to_fname(uri)))
  vim.api.nvim_win_set_cursor(0, { tonumber(lnum), 0 })
end

--- Closes floating windows (a hover popup, a signature help) so a window opened next is not hidden under them.
local function close_floats()
  for _, win in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
    if vim.api.nvim_win_get_config(win).relative ~= "" then
      pcall(vim.api.nvim_win_close, win, true)
    end
  end
end

--- :EngramSearch {query} — hits in the quickfix list, opened in view (any hover popup is closed first).
--- Errors reach the user through vim.notify (see M.execute).
function M.search(query, cb)
  M.execute("engram.search", { query = query, k = 20 }, function(err, result)
    if err then
      return cb and cb(err)
    end
    if type(result) ~= "table" then
      notify("search returned no answer for " .. query, vim.log.levels.ERROR)
      return cb and cb({ message = "no answer" })
    end
    local items = {}
    for _, hit in ipairs(result.results or {}) do
      local first = (hit.text or ""):match("[^\n]*%S[^\n]*") or ""
      table.insert(items, {
        filename = vim.uri_to_fname(hit.uri),
        lnum = hit.start_line,
        end_lnum = hit.end_line,
        text = string.format("%.3f %s", hit.score, vim.trim(first)),
      })
    end
    vim.fn.setqflist({}, " ", { title = "engram-ls: " .. query, items = items })
    if #items > 0 then
      close_floats()
      vim.cmd("botright copen")
    else
      notify("no results for " .. query)
    end
    if cb then
      cb(nil, items)
    end
  end)
end

--- :EngramAsk {question} — a workspace question answered in a scratch buffer with citations.
function M.ask(question, cb)
  M.execute("engram.explainWorkspace", { question = question }, function(err, result)
    if result then
      M.show_markdown(question, result.markdown)
    end
    if cb then
      cb(err, result)
    end
  end)
end

--- :EngramExplain — explains the selection (or the current line's chunk).
function M.explain(opts, cb)
  local arg = { uri = vim.uri_from_bufnr(0), range = selection_range(opts) }
  M.execute("engram.explainSelection", arg, function(err, result)
    if result then
      M.show_markdown("explain", result.markdown)
    end
    if cb then
      cb(err, result)
    end
  end, 0)
end

local function preview_edit(edit, offset_encoding)
  local lines = {}
  for _, change in ipairs(edit.documentChanges or {}) do
    if change.textDocument and change.edits then
      local fname = vim.uri_to_fname(change.textDocument.uri)
      table.insert(lines, "--- " .. fname)
      for _, e in ipairs(change.edits) do
        table.insert(lines, string.format("@@ lines %d-%d @@", e.range.start.line + 1, e.range["end"].line))
        for _, l in ipairs(vim.split(e.newText, "\n", { plain = true })) do
          table.insert(lines, "+" .. l)
        end
      end
    elseif change.kind == "create" then
      table.insert(lines, "+++ new file " .. vim.uri_to_fname(change.uri))
    end
  end
  return lines
end

--- :EngramRefactor {instruction} — shows the proposed edit; applies it only when confirmed.
function M.refactor(instruction, opts)
  local client = M.client(0)
  local arg = { uri = vim.uri_from_bufnr(0), range = selection_range(opts), instruction = instruction, apply = false }
  M.execute("engram.refactorSelection", arg, function(err, result)
    if err or not result or not result.edit then
      return
    end
    local buf = M.show_markdown("refactor", table.concat(preview_edit(result.edit), "\n"))
    vim.bo[buf].filetype = "diff"
    local function apply(ok)
      if ok then
        vim.lsp.util.apply_workspace_edit(result.edit, client and client.offset_encoding or "utf-16")
        notify("applied the refactoring")
      end
    end
    vim.ui.select({ "Apply", "Discard" }, { prompt = "engram-ls: apply this edit?" }, function(choice)
      apply(choice == "Apply")
    end)
  end, 0)
end

--- :EngramStatus — index size, models and worker health.
function M.status(cb)
  M.execute("engram.status", nil, function(err, result)
    if result then
      local lines = { "engram-ls " .. (result.version or "?") }
      for root, info in pairs(result.index or {}) do
        table.insert(lines, string.format("  %s: %d files, %d chunks%s", root, info.files or 0, info.chunks or 0,
          info.indexing and " (indexing)" or ""))
      end
      for role, pool in pairs(result.models or {}) do
        if type(pool) == "table" and pool.model then
          table.insert(lines, string.format("  %s: %s, %d/%d workers alive, %d restarts", role, pool.model,
            pool.alive or 0, pool.size or 0, pool.restarts or 0))
        end
      end
      vim.notify(table.concat(lines, "\n"))
    end
    if cb then
      cb(err, result)
    end
  end)
end

--- Neovim inserts only the first word of a plain-text completion; an engram suggestion is code that runs on
--- (often several lines), so accepting it with <C-y> inserts the rest too.
local function complete_rest(client_id)
  if vim.v.event.reason ~= "accept" then
    return
  end
  local item = vim.v.completed_item
  local lsp = vim.tbl_get(item or {}, "user_data", "nvim", "lsp") or {}
  local ci = lsp.completion_item
  if lsp.client_id ~= client_id or not ci or ci.insertTextFormat == 2 then
    return
  end
  local full = ci.textEdit and ci.textEdit.newText or ci.insertText or ci.label
  local word = item.word or ""
  if #full <= #word or full:sub(1, #word) ~= word then
    return
  end
  local row, col = unpack(vim.api.nvim_win_get_cursor(0))
  local rest = vim.split(full:sub(#word + 1), "\n", { plain = true })
  vim.api.nvim_buf_set_text(0, row - 1, col, row - 1, col, rest)
  local last_row = row + #rest - 1
  local last_col = (#rest == 1 and col or 0) + #rest[#rest]
  vim.api.nvim_win_set_cursor(0, { last_row, last_col })
end

--- The engram-ls work in progress ("indexing shop: 40/120 files (33%)"), or "" — for a statusline:
--- `vim.o.statusline = "%f %{v:lua.require'engram_ls'.progress()}"`. vim.lsp.status() has the same reports.
function M.progress()
  return M._progress or ""
end

local function on_progress(ev)
  local client = vim.lsp.get_client_by_id(ev.data.client_id)
  local value = vim.tbl_get(ev.data, "params", "value")
  if not client or client.name ~= M.name or type(value) ~= "table" then
    return
  end
  if value.kind == "begin" then
    M._title = value.title
  end
  local title = (M._title or "engram-ls"):gsub("^engram%-ls: ", "")
  if value.kind == "end" then
    M._progress = nil
    M._title = nil
  else
    local pct = value.percentage and string.format(" (%d%%)", value.percentage) or ""
    M._progress = title .. (value.message and (": " .. value.message) or "") .. pct
  end
  if M.options.progress then
    local text = "engram-ls: " .. (value.kind == "end" and (title .. (value.message and (": " .. value.message) or ""))
      or M._progress)
    vim.api.nvim_echo({ { text } }, false, {})
  end
  pcall(vim.cmd.redrawstatus)
end

function M.on_attach(client, bufnr)
  local o = M.options
  if o.completion then
    vim.bo[bufnr].omnifunc = "v:lua.vim.lsp.omnifunc"
    if vim.lsp.completion and vim.lsp.completion.enable then
      vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = false })
    end
    vim.api.nvim_create_autocmd("CompleteDone", {
      group = vim.api.nvim_create_augroup("engram_ls_complete_" .. bufnr, { clear = true }),
      buffer = bufnr,
      callback = function() complete_rest(client.id) end,
    })
  end
  if o.inline and vim.lsp.inline_completion and vim.lsp.inline_completion.enable then
    pcall(vim.lsp.inline_completion.enable, true, { bufnr = bufnr })
  end
  if o.keymaps then
    local map = function(lhs, rhs, desc)
      vim.keymap.set({ "n", "x" }, lhs, rhs, { buffer = bufnr, desc = "engram-ls: " .. desc })
    end
    map("<leader>ea", ":EngramAsk ", "ask")
    map("<leader>ee", ":EngramExplain<CR>", "explain")
    map("<leader>er", ":EngramRefactor ", "refactor")
    map("<leader>es", ":EngramSearch ", "search")
  end
end

local function lsp_config()
  local o = M.options
  -- an empty Lua table is a JSON list; the server's settings are an object
  local settings = next(o.settings or {}) and o.settings or vim.empty_dict()
  return {
    cmd = o.cmd,
    filetypes = o.filetypes,
    root_markers = o.root_markers, -- none found (a loose folder): the server indexes the file's folder
    init_options = settings,
    settings = { engram = settings },
    on_attach = M.on_attach,
    handlers = {
      -- answers are shown in a scratch buffer by this plugin; the server's generated file need not open too
      ["window/showDocument"] = function()
        return { success = true }
      end,
    },
  }
end

--- Enables the server: vim.lsp.config + vim.lsp.enable on 0.11+, vim.lsp.start on 0.10.
function M.enable()
  vim.api.nvim_create_autocmd("LspProgress", {
    group = vim.api.nvim_create_augroup("engram_ls_progress", { clear = true }),
    callback = on_progress,
  })
  if vim.lsp.config and vim.lsp.enable then
    vim.lsp.config(M.name, lsp_config())
    vim.lsp.enable(M.name)
    return
  end
  local group = vim.api.nvim_create_augroup("engram_ls_start", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    callback = function(args)
      local o = M.options
      if o.filetypes and not vim.tbl_contains(o.filetypes, vim.bo[args.buf].filetype) then
        return
      end
      local cfg = lsp_config()
      cfg.name = M.name
      cfg.root_dir = vim.fs.root(args.buf, o.root_markers) -- nil: no workspace folder, the server indexes the file's folder
      vim.lsp.start(cfg, { bufnr = args.buf })
    end,
  })
end

function M.setup(opts)
  M.options = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts or {})
  M.enable()
end

return M

-- Steward in Neovim's built-in LSP client, for Neovim 0.7 and later:
--   nvim -u lsp/nvim/init.lua rules/welcome.stw
-- or copy these lines into your own init.lua. `steward` must be on PATH
-- (or set STEWARD to its path). Newer Neovims can use the shorter forms in
-- docs/editor.md.

vim.cmd([[autocmd BufRead,BufNewFile *.stw setfiletype steward]])
vim.cmd([[autocmd FileType steward setlocal commentstring=#\ %s]])

local steward = os.getenv("STEWARD") or "steward"
local client_id = nil

vim.api.nvim_create_autocmd("FileType", {
  pattern = "steward",
  callback = function(args)
    if client_id == nil then
      client_id = vim.lsp.start_client({
        name = "steward",
        cmd = { steward, "lsp" },
        root_dir = vim.fn.getcwd(),
      })
    end
    vim.lsp.buf_attach_client(args.buf, client_id)
    local opts = { buffer = args.buf }
    vim.keymap.set("n", "K", vim.lsp.buf.hover, opts)
    vim.keymap.set("n", "gd", vim.lsp.buf.definition, opts)
    vim.keymap.set("n", "gr", vim.lsp.buf.references, opts)
    vim.keymap.set("n", "<leader>rn", vim.lsp.buf.rename, opts)
    vim.keymap.set("n", "<leader>ca", vim.lsp.buf.code_action, opts)
    vim.keymap.set("n", "<leader>f", function()
      vim.lsp.buf.format({ async = false })
    end, opts)
    vim.bo[args.buf].omnifunc = "v:lua.vim.lsp.omnifunc"
  end,
})

"""engram_ls.retrieval"""

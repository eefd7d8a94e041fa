from engram_ls.retrieval.features import code_features, query_features, split_identifier


def test_identifiers_split_into_subtokens():
    assert split_identifier("getUserName") == ["get", "user", "name"]
    assert split_identifier("parse_HTTPResponse2") == ["parse", "http", "response", "2"]


def test_roles_are_tagged():
    f = code_features("from os import path\ndef load(cfg):\n    return reader.parse(cfg)\n")
    assert f["d:load"] == 1
    assert f["c:parse"] == 1
    assert f["a:parse"] == 1
    assert f["m:os"] == 1 and f["m:path"] == 1
    assert f["i:reader"] == 1 and f["t:cfg"] == 2


def test_order_pairs_and_path_words():
    f = code_features("user_name = 1", path="src/account_store.py")
    assert f["o:user name"] == 1
    assert f["t:account"] == 1 and f["t:store"] == 1


def test_natural_language_queries_drop_stop_words_and_roles():
    q = query_features("Return the number of open files")
    assert "t:the" not in q and "t:return" not in q
    assert q["t:number"] == 1 and q["t:files"] == 1
    assert not any(k.startswith(("c:", "d:")) for k in q)


def test_code_queries_keep_roles():
    q = query_features("result = parser.feed(data)")
    assert q["c:feed"] == 1 and q["a:feed"] == 1


def test_the_stemmer_joins_inflections_and_keeps_short_words():
    from engram_ls.retrieval.features import stem

    assert {stem(w) for w in ("validate", "validated", "validates", "validation", "validating")} == {"validat"}
    assert stem("entries") == stem("entry") == "entry" and stem("classes") == stem("class") == "class"
    assert stem("running") == "run" and stem("process") == "process" and stem("name") == "name"


def test_context_words_name_the_enclosing_definitions():
    from engram_ls.retrieval.features import context_words

    lines = ["class UploadQueue:", "    x = 1", "", "    def retry(self):", "        return 1",
             "def top_level():", "    pass"]
    assert context_words(lines, 4) == ["upload", "queue"]
    assert context_words(lines, 6) == []          # a top-level unit has no enclosing definition
    js = ["export class HttpClient {", "  constructor() {}", "  fetchPage(url) {", "    return url;", "  }", "}"]
    assert context_words(js, 3) == ["http", "client"]

"""From a page's bytes to its main text with the math kept as LaTeX: libraries, not steps.

    decode.py     is it HTML, and in which charset (BOM, HTTP header, <meta>, strict UTF-8, detection)
    math_html.py  main-content extraction with every formula rewritten to `$...$` / `$$...$$`
    mathml.py     the one MathML -> LaTeX converter (web pages and CNXML seed texts)
    asciimath.py  AsciiMath -> LaTeX (pages that load the AsciiMath renderer)
    record.py     one record's payload -> text or a named drop: what the extraction guard's child runs

`curate.steps.extract.ExtractStep` runs them per record under the guard; the classifier's labelled pages and seed
texts call them directly, so every text the model sees went through the same code.
"""
